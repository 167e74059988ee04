"""The production notification queue without a broker: keyed by user, durable when send returns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaTimeoutError

from core.adapters.codec import decode_notification
from core.adapters.kafka import KafkaNotificationQueue
from core.domain.errors import Unavailable
from core.domain.notifications import Notification, NotificationKind

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

    def __init__(self, error: Exception | None = None) -> None:
        self.config = {"delivery_timeout_ms": 5_100}
        self.error = error
        self.records: list[tuple[str, bytes, bytes]] = []
        self.sent: list[Sent] = []
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> Sent:
        self.records.append((topic, key, value))
        self.sent.append(Sent(self.error))
        return self.sent[-1]

    def close(self, timeout: float = 0) -> None:
        self.closed = True


def notification(user_id: str) -> Notification:
    return Notification(f"id-{user_id}", user_id, NotificationKind.REPORT_READY, "t", "b", NOW, f"key-{user_id}")


def test_notifications_go_to_the_topic_keyed_by_user_and_send_waits_for_kafka():
    producer = FakeProducer()
    KafkaNotificationQueue(lambda: producer, "notifications").send([notification("u1"), notification("u2")])
    assert [(topic, key) for topic, key, _ in producer.records] == [("notifications", b"u1"), ("notifications", b"u2")]
    assert decode_notification(producer.records[0][2]) == notification("u1")
    assert all(sent.waited for sent in producer.sent)


def test_without_kafkas_acknowledgement_send_is_unavailable_and_the_next_send_uses_a_new_producer():
    producers = [FakeProducer(KafkaTimeoutError("no answer")), FakeProducer()]
    made = iter(producers)
    queue = KafkaNotificationQueue(lambda: next(made), "notifications")
    with pytest.raises(Unavailable, match="Kafka"):
        queue.send([notification("u1")])
    queue.send([notification("u1")])
    assert len(producers[1].records) == 1
