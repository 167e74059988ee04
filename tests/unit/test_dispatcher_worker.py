"""The dispatcher processes' loops without a broker: commit only after the write, rewind on failure."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from fittrack.core.adapters.codec import encode_notification, encode_notifications
from fittrack.core.domain.delivery import Delivery, PushOutcome, PushResult, RetryPolicy
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.notifications import Notification, NotificationKind, report_ready_key
from fittrack.core.services.dispatch import Dispatcher, DispatchSettings
from fittrack.workers.dispatcher import KafkaDispatcher, retry_round
from tests.unit.fakes import FakeConsumer, FakePushChannel, FakeSink, fake_app

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class FailingOnce:
    def __init__(self, dispatcher) -> None:
        self._dispatcher = dispatcher
        self.failed = False

    def handle(self, notifications):
        if not self.failed:
            self.failed = True
            raise Unavailable("the account database is unavailable; try again")
        return self._dispatcher.handle(notifications)


@pytest.fixture
def app():
    return fake_app(NOW)


def report_ready(user_id: str, week: int) -> Notification:
    return Notification(
        uuid.uuid4().hex,
        user_id,
        NotificationKind.REPORT_READY,
        "Your report is ready",
        "body",
        NOW,
        report_ready_key(user_id, datetime(2026, 5, 4 + 7 * week).date()),
    )


def test_a_poll_is_stored_and_then_committed(app, alice):
    notifications = [report_ready(alice.user_id, week) for week in range(3)]
    consumer = FakeConsumer([encode_notification(n) for n in notifications])
    assert KafkaDispatcher(consumer, app.dispatcher).run_once() == 3
    assert consumer.events == ["commit"] and consumer.committed == 3
    assert len(app.database.notifications_of(alice.user_id)) == 3


def test_a_failed_poll_is_rewound_uncommitted_and_stored_once_when_it_comes_again(app, alice):
    notifications = [report_ready(alice.user_id, week) for week in range(2)]
    consumer = FakeConsumer([encode_notification(n) for n in notifications])
    worker = KafkaDispatcher(consumer, FailingOnce(app.dispatcher))
    with pytest.raises(Unavailable):
        worker.run_once()
    assert consumer.events == ["seek 0"] and consumer.committed == 0
    assert worker.run_once() == 2
    assert consumer.committed == 2
    assert len(app.database.notifications_of(alice.user_id)) == 2


def test_a_malformed_record_is_skipped_instead_of_blocking_its_partition(app, alice):
    good = report_ready(alice.user_id, 0)
    consumer = FakeConsumer([b"not json", encode_notification(good)])
    assert KafkaDispatcher(consumer, app.dispatcher).run_once() == 2
    assert consumer.committed == 2
    assert app.database.notifications_of(alice.user_id) == [good]


def test_records_of_several_notifications_and_of_one_are_both_stored_and_odd_json_shapes_are_skipped(app, alice):
    several = [report_ready(alice.user_id, week) for week in range(3)]
    single = report_ready(alice.user_id, 3)
    records = [b"[1]", encode_notifications(several), b"null", encode_notification(single), b"7"]
    consumer = FakeConsumer(records)
    assert KafkaDispatcher(consumer, app.dispatcher).run_once() == 5
    assert consumer.committed == 5
    assert sorted(n.notification_id for n in app.database.notifications_of(alice.user_id)) == sorted(
        n.notification_id for n in [*several, single]
    )


def test_the_retry_loop_goes_on_at_once_after_pushing_and_otherwise_sleeps_until_the_next_due_push(app, alice):
    channel = FakePushChannel(PushResult(PushOutcome.RETRY, "HTTP 503"))
    settings = DispatchSettings(retry=RetryPolicy(3, base_seconds=0.4, max_seconds=0.4))
    dispatcher = Dispatcher(app.database, FakeSink(), app.clock, channel, None, settings, HalfwayRandom())
    assert retry_round(dispatcher) == 1.0  # nothing pending: look again within a second
    with app.database() as uow:  # stored and due, as after a crash before the first push
        notification = report_ready(alice.user_id, 0)
        uow.notifications.add(notification)
        uow.deliveries.add(Delivery(notification.notification_id, alice.user_id, NOW, NOW))
        uow.commit()
    assert retry_round(dispatcher) == 0.0  # it pushed (and failed): more may be due
    assert retry_round(dispatcher) == pytest.approx(0.2)  # the retry, halfway into a 0.4 s window


class HalfwayRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2
