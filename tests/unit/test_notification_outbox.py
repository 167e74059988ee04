"""The embedded notification queue: an outbox table in the SQLite file, drained in order.

The delivery tables it feeds keep the promises checked in tests/contract/test_accounts.py.
"""

from datetime import UTC, date, datetime

import pytest

from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_outbox import SqliteNotificationQueue
from fittrack.core.domain.notifications import Notification, NotificationKind

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "fittrack.sqlite3"


@pytest.fixture
def db(path):
    database = SqliteDatabase(path)
    database.migrate()
    yield database
    database.close()


def notification(number: int, user_id: str = "alice", day: date | None = None) -> Notification:
    return Notification(
        f"{number:032x}",
        user_id,
        NotificationKind.REPORT_READY,
        f"title {number}",
        "body",
        NOW,
        f"key-{number}",
        local_date=day,
    )


def test_the_outbox_hands_notifications_over_in_order_until_acknowledged(db, path):
    woken = []
    queue = SqliteNotificationQueue(db, on_sent=lambda: woken.append(True))
    sent = [notification(1, day=date(2026, 6, 10)), notification(2), notification(3, "bob")]
    queue.send(sent[:2])
    queue.send(sent[2:])
    queue.send([])
    assert len(woken) == 2
    pending = queue.pending(10)
    assert [n for _, n in pending] == sent
    assert [n for _, n in queue.pending(1)] == sent[:1]
    queue.acknowledge(pending[1][0])
    # What was not acknowledged survives a restart.
    reopened = SqliteDatabase(path)
    try:
        assert [n for _, n in SqliteNotificationQueue(reopened).pending(10)] == sent[2:]
    finally:
        reopened.close()
