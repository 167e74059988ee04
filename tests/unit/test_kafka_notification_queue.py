"""The production notification queue without a broker: by user's partition, durable when send returns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaTimeoutError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from fittrack.core.adapters.codec import decode_notifications
from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue, partition_of
from fittrack.core.adapters.trace_context import context_from
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.notifications import Notification, NotificationKind

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class Sent:
    def __init__(self, error: Exception | None) -> None:
        self._error = error
        self.waited = False

    def get(self, timeout: float):
        self.waited = True
        if self._error is not None:
            raise self._error


class FakeProducer:
    """What the queue uses of kafka-python's KafkaProducer; acknowledges, or fails every send with `error`."""

    PARTITIONS = {0, 1, 2, 3}

    def __init__(self, error: Exception | None = None) -> None:
        self.config = {"delivery_timeout_ms": 5_100}
        self.error = error
        self.records: list[tuple[str, int, bytes]] = []
        self.headers: list = []
        self.sent: list[Sent] = []
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        return self.PARTITIONS

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None, headers=None) -> Sent:
        self.records.append((topic, partition, value))
        self.headers.append(headers)
        self.sent.append(Sent(self.error))
        return self.sent[-1]

    def close(self, timeout: float = 0) -> None:
        self.closed = True


def notification(user_id: str, number: int = 0) -> Notification:
    return Notification(
        f"id-{user_id}-{number}", user_id, NotificationKind.REPORT_READY, "t", "b", NOW, f"key-{user_id}-{number}"
    )


def test_each_users_notifications_go_to_the_partition_their_id_hashes_to_and_send_waits_for_kafka():
    producer = FakeProducer()
    users = [f"user-{n}" for n in range(40)]
    sent = [notification(user_id) for user_id in users]
    KafkaNotificationQueue(lambda: producer, "notifications").send(sent)
    received = {}
    for topic, partition, value in producer.records:
        assert topic == "notifications"
        for one in decode_notifications(value):
            received[one.user_id] = (partition, one)
    assert {user_id: one for user_id, (_, one) in received.items()} == {n.user_id: n for n in sent}
    for user_id, (partition, _) in received.items():
        assert partition == partition_of(user_id.encode(), [0, 1, 2, 3])
    assert len({partition for partition, _ in received.values()}) > 1
    assert all(sent.waited for sent in producer.sent)


def test_many_notifications_travel_in_few_records_and_keep_each_users_order():
    producer = FakeProducer()
    sent = [notification(f"user-{n % 50}", n) for n in range(1000)]
    KafkaNotificationQueue(lambda: producer, "notifications").send(sent)
    assert len(producer.records) <= 1000 // KafkaNotificationQueue.PER_RECORD + len(FakeProducer.PARTITIONS)
    received = [one for _, _, value in producer.records for one in decode_notifications(value)]
    assert sorted(received, key=lambda n: n.notification_id) == sorted(sent, key=lambda n: n.notification_id)
    for user_id in {n.user_id for n in sent}:
        assert [n for n in received if n.user_id == user_id] == [n for n in sent if n.user_id == user_id]


def test_partition_of_spreads_users_over_every_partition_and_keeps_each_on_one():
    partitions = [0, 1, 2, 3, 4, 5]
    chosen = [partition_of(f"{n:032x}".encode(), partitions) for n in range(600)]
    assert chosen == [partition_of(f"{n:032x}".encode(), partitions) for n in range(600)]
    assert all(chosen.count(p) > 50 for p in partitions)


def test_without_kafkas_acknowledgement_send_is_unavailable_and_the_next_send_uses_a_new_producer():
    producers = [FakeProducer(KafkaTimeoutError("no answer")), FakeProducer()]
    made = iter(producers)
    queue = KafkaNotificationQueue(lambda: next(made), "notifications")
    with pytest.raises(Unavailable, match="Kafka"):
        queue.send([notification("u1")])
    queue.send([notification("u1")])
    assert len(producers[1].records) == 1


def test_notifications_sent_inside_a_span_carry_its_trace_context_and_untraced_ones_carry_no_headers():
    producer = FakeProducer()
    queue = KafkaNotificationQueue(lambda: producer, "notifications")
    with TracerProvider().get_tracer("test").start_as_current_span("a persister write") as span:
        queue.send([notification("u1"), notification("u2")])
    traced = len(producer.headers)
    queue.send([notification("u3")])
    for headers in producer.headers[:traced]:
        carried = trace.get_current_span(context_from(headers)).get_span_context()
        assert (carried.trace_id, carried.span_id) == (
            span.get_span_context().trace_id,
            span.get_span_context().span_id,
        )
    assert producer.headers[traced:] == [None]
