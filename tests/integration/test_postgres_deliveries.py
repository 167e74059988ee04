"""Pushes on PostgreSQL: dispatcher processes claiming at the same moment share the work instead of queueing.

The rest of the delivery contract is checked on every backend in tests/contract/test_accounts.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
from fittrack.core.domain.delivery import Delivery
from tests.contract import builders

pytestmark = pytest.mark.production

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def test_two_dispatchers_claiming_at_once_take_different_pushes_without_waiting(pg_empty):
    uow = lambda: PostgresUnitOfWork(pg_empty)  # noqa: E731
    builders.add_user(uow)
    with uow() as unit:
        for number in range(4):
            notification = builders.notification(f"n{number}")
            unit.notifications.add(notification)
            unit.deliveries.add(Delivery(notification.notification_id, "u1", T0 + timedelta(seconds=number), T0))
        unit.commit()
    lease = T0 + timedelta(minutes=1)
    first, second = uow(), uow()
    with first:
        taken_first = first.deliveries.claim(T0 + timedelta(seconds=10), lease, 2)
        # The first has not committed: its rows are locked, and the second skips them instead of waiting.
        with second:
            taken_second = second.deliveries.claim(T0 + timedelta(seconds=10), lease, 10)
            second.commit()
        first.commit()
    assert [d.notification_id for d, _ in taken_first] == ["n0", "n1"]
    assert sorted(d.notification_id for d, _ in taken_second) == ["n2", "n3"]
