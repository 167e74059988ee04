"""The production persister's loop, without a broker: commit only after the write, rewind on failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.adapters.codec import encode_batch
from core.domain.errors import Unavailable
from core.domain.metrics import MetricKind
from core.services.metrics import RawBatch
from tests.unit.fakes import FakeConsumer, fake_app
from workers.persister import KafkaPersister

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class FailingOnce:
    """A persister whose first apply fails as a metric store outage would."""

    def __init__(self, persister) -> None:
        self._persister = persister
        self.failed = False

    def apply(self, batches) -> None:
        if not self.failed:
            self.failed = True
            raise Unavailable("the metric store is unavailable; try again")
        self._persister.apply(batches)


@pytest.fixture
def app():
    return fake_app(NOW)


def accepted_payloads(app, principal, count: int) -> list[bytes]:
    """Batches the server would have produced: one step reading each, in successive minutes."""
    ingest = app.metrics.open_ingest(principal)
    minute = int(NOW.timestamp()) // 60 * 60 - 3600
    return [
        encode_batch(ingest.check(RawBatch("watch-1", 0, [(int(MetricKind.STEPS), minute + 60 * i, 10.0)])))
        for i in range(count)
    ]


def steps_today(app, principal) -> float:
    return sum(d.value for d in app.store.days(principal.user_id, MetricKind.STEPS, NOW.date(), NOW.date()))


def test_records_are_committed_only_after_they_are_written(app):
    alice = app.sign_up("alice")
    consumer = FakeConsumer(accepted_payloads(app, alice, 5))
    worker = KafkaPersister(consumer, app.persister)
    assert worker.run_once() == 5
    assert steps_today(app, alice) == 50
    assert consumer.events == ["commit"] and consumer.committed == 5


def test_a_failed_write_commits_nothing_and_the_same_records_come_again(app):
    alice = app.sign_up("alice")
    consumer = FakeConsumer(accepted_payloads(app, alice, 3))
    worker = KafkaPersister(consumer, FailingOnce(app.persister))
    with pytest.raises(Unavailable):
        worker.run_once()
    assert consumer.events == ["seek 0"] and consumer.committed == 0
    assert worker.run_once() == 3
    assert steps_today(app, alice) == 30
    assert consumer.committed == 3


def test_records_delivered_again_after_a_crash_are_not_counted_twice(app):
    alice = app.sign_up("alice")
    payloads = accepted_payloads(app, alice, 4)
    KafkaPersister(FakeConsumer(payloads), app.persister).run_once()
    # A new owner of the partition gets the uncommitted records again.
    KafkaPersister(FakeConsumer(payloads), app.persister).run_once()
    assert steps_today(app, alice) == 40
