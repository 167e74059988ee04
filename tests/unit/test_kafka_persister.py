"""The production persister's loop, without a broker: commit only after the write, rewind on failure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from fittrack.core.adapters.codec import encode_batch
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.sequences import LogPosition
from fittrack.core.services.metrics import RawBatch
from fittrack.core.services.persistence import FirstCopies
from fittrack.workers.persister import KafkaPersister
from fittrack.workers.runtime import Every
from tests.unit.fakes import FakeBatchClaims, FakeConsumer, Record, fake_app

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class FailingOnce:
    """A persister whose first apply fails as a metric store outage would."""

    def __init__(self, persister) -> None:
        self._persister = persister
        self.failed = False

    def apply(self, batches, traces=None) -> None:
        if not self.failed:
            self.failed = True
            raise Unavailable("the metric store is unavailable; try again")
        self._persister.apply(batches, traces)


@pytest.fixture
def app():
    return fake_app(NOW)


def first_copies(app) -> FirstCopies:
    return FirstCopies(FakeBatchClaims(), app.clock)


def accepted_payloads(app, principal, count: int, sequences=None, value: float = 10.0, first_minute: int = 0):
    """Batches the server would have produced: one step reading each, in successive minutes."""
    ingest = app.metrics.open_ingest(principal)
    minute = int(NOW.timestamp()) // 60 * 60 - 3600
    sequences = sequences or [0] * count
    return [
        encode_batch(
            ingest.check(
                RawBatch("watch-1", sequences[i], [(int(MetricKind.STEPS), minute + 60 * (first_minute + i), value)])
            )
        )
        for i in range(count)
    ]


def steps_today(app, principal) -> float:
    return sum(d.value for d in app.store.days(principal.user_id, MetricKind.STEPS, NOW.date(), NOW.date()))


def test_records_are_committed_only_after_they_are_written(app):
    alice = app.sign_up("alice")
    consumer = FakeConsumer(accepted_payloads(app, alice, 5))
    worker = KafkaPersister(consumer, app.persister, first_copies(app))
    assert worker.run_once() == 5
    assert steps_today(app, alice) == 50
    assert consumer.events == ["commit"] and consumer.committed == 5


def test_a_failed_write_commits_nothing_and_the_same_records_come_again(app):
    alice = app.sign_up("alice")
    consumer = FakeConsumer(accepted_payloads(app, alice, 3))
    worker = KafkaPersister(consumer, FailingOnce(app.persister), first_copies(app))
    with pytest.raises(Unavailable):
        worker.run_once()
    assert consumer.events == ["seek 0"] and consumer.committed == 0
    assert worker.run_once() == 3
    assert steps_today(app, alice) == 30
    assert consumer.committed == 3


def test_records_delivered_again_after_a_crash_are_not_counted_twice(app):
    alice = app.sign_up("alice")
    payloads = accepted_payloads(app, alice, 4)
    copies = first_copies(app)
    KafkaPersister(FakeConsumer(payloads), app.persister, copies).run_once()
    # A new owner of the partition gets the uncommitted records again.
    KafkaPersister(FakeConsumer(payloads), app.persister, copies).run_once()
    assert steps_today(app, alice) == 40


def test_only_the_first_copy_of_a_numbered_batch_in_the_log_is_applied(app):
    alice = app.sign_up("alice")
    first = accepted_payloads(app, alice, 2, sequences=[1, 2], value=10.0)
    # Copies of sequence 1 with other readings: a resend in flight, or one another server published.
    copies = accepted_payloads(app, alice, 2, sequences=[1, 1], value=500.0, first_minute=5)
    KafkaPersister(FakeConsumer([first[0], *copies, first[1]]), app.persister, first_copies(app)).run_once()
    assert steps_today(app, alice) == 20


def test_a_copy_read_in_a_later_poll_is_still_told_apart_from_the_first(app):
    alice = app.sign_up("alice")
    copies = first_copies(app)
    consumer = FakeConsumer(accepted_payloads(app, alice, 1, sequences=[7], value=40.0))
    worker = KafkaPersister(consumer, app.persister, copies)
    worker.run_once()
    consumer.log += [
        Record(1, payload) for payload in accepted_payloads(app, alice, 1, sequences=[7], value=158.0, first_minute=3)
    ]
    worker.run_once()
    # The first copy read again after a crash still counts: its claim is its own position.
    KafkaPersister(FakeConsumer([consumer.log[0].value]), app.persister, copies).run_once()
    assert steps_today(app, alice) == 40


def test_claims_are_forgotten_a_week_after_they_were_made_and_at_most_hourly(app):
    claims = FakeBatchClaims()
    copies = FirstCopies(claims, app.clock)
    copies.counted([])
    claims.claim({("u1", "watch", 1): LogPosition(0, 1)}, NOW - timedelta(days=8))
    claims.claim({("u1", "watch", 2): LogPosition(0, 2)}, NOW - timedelta(days=6))
    assert copies.forget_expired() == 1
    claims.claim({("u1", "watch", 3): LogPosition(0, 3)}, NOW - timedelta(days=8))
    assert copies.forget_expired() == 0
    app.clock.advance(timedelta(hours=1))
    assert copies.forget_expired() == 1
    assert set(claims.claims) == {("u1", "watch", 2)}


def test_chores_run_after_polls_with_or_without_records_at_most_once_per_interval(app):
    now = [0.0]
    done = []
    worker = KafkaPersister(
        FakeConsumer([]), app.persister, first_copies(app), [Every(60, lambda: done.append(now[0]), lambda: now[0])]
    )
    stopping = threading.Event()
    polls = iter(range(3))

    def poll_then_maybe_stop(timeout_ms):
        if next(polls, None) is None:
            stopping.set()
        now[0] += 25
        return {}

    worker._consumer.poll = poll_then_maybe_stop
    worker.run(stopping)
    # Polls at 25, 50, 75 and 100 s: the chore ran at the first and once the minute had passed.
    assert done == [25.0, 100.0]
