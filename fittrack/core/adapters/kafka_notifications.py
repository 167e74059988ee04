"""Kafka for notifications: the `notifications` queue the evaluator and persisters send to, the live topic every
server relays to its open streams, and the dead letters' topic."""

from __future__ import annotations

import logging
import threading
import typing
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from fittrack.core.adapters.codec import (
    decode_dead_letter,
    decode_notification,
    encode_dead_letter,
    encode_notification,
    encode_notifications,
)
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.adapters.kafka import bootstrap_list, close_quietly
from fittrack.core.domain.delivery import DeadLetter
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.notifications import Notification
from fittrack.core.ports import DeadLetterLog, NotificationQueue, NotificationSink

log = logging.getLogger(__name__)


class KafkaNotificationSink(NotificationSink):
    """The dispatcher's side: stored notifications go to the live topic, which every server relays."""

    def __init__(
        self, producer: KafkaProducer, topic: str, timeout: float = 10.0, instruments: Instruments = NO_INSTRUMENTS
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout
        self._instruments = instruments

    def deliver(self, notification: Notification) -> None:
        try:
            future = self._producer.send(
                self._topic, key=notification.user_id.encode(), value=encode_notification(notification)
            )
            future.get(timeout=self._timeout)
        except KafkaError:
            self._instruments.produce_failed(self._topic)
            raise


class NotificationRelay:
    """The server's side: every server reads the whole live topic from its end
    and hands each notification to its own open in-app streams.

    No consumer group: every server instance must see every notification,
    since the user's stream may be open on any of them. A dispatcher that
    crashed mid-push sends a notification's live copy again; the relay passes
    on each notification id once, so a stream shows it once.
    """

    RECENT_IDS = 10_000  # ids remembered; redeliveries come seconds after the first copy

    def __init__(self, bootstrap: str, topic: str, deliver: Callable[[Notification], None]) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._deliver = deliver
        self._recent: dict[str, None] = {}
        self._stopping = threading.Event()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notification-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = None
        while not self._stopping.is_set():
            try:
                if consumer is None:
                    consumer = self._connect()
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._relay(decode_notification(record.value))
            except Exception:
                log.warning("notification relay lost Kafka; reconnecting", exc_info=True)
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stopping.wait(1.0)
        if consumer is not None:
            consumer.close()

    def _relay(self, notification: Notification) -> None:
        if notification.notification_id in self._recent:
            return
        self._recent[notification.notification_id] = None
        if len(self._recent) > self.RECENT_IDS:
            del self._recent[next(iter(self._recent))]
        self._deliver(notification)

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_list(self._bootstrap), group_id=None, enable_auto_commit=False
        )
        partitions = [TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())]
        if not partitions:
            consumer.close()
            raise KafkaError(f"topic {self._topic} has no partitions yet")
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        # Resolve the end offsets now: a notification produced after this
        # point is relayed, even before the first poll returns.
        for partition in partitions:
            consumer.position(partition)
        self.ready.set()
        return consumer


class _Producing:
    """A producer made on first use and replaced after a failure (see KafkaReadingBus._discard)."""

    def __init__(
        self,
        make_producer: Callable[[], KafkaProducer],
        timeout: float,
        unavailable: str,
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        self._make_producer = make_producer
        self._instruments = instruments
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._timeout = timeout
        self._unavailable = unavailable

    def send_all(self, topic: str, records: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        """Produce the (key, value, partition) records and wait until Kafka acknowledged all of them;
        Unavailable otherwise. A record without a partition goes where its key hashes to."""
        producer = self._current(topic)
        try:
            sent = [producer.send(topic, key=key, value=value, partition=part) for key, value, part in records]
            for future in sent:
                future.get(timeout=self._timeout)
        except KafkaError as error:
            self._failed(producer, topic, error, records=len(records))

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, in order, as the producer's metadata has them."""
        producer = self._current(topic)
        try:
            return sorted(producer.partitions_for(topic))
        except KafkaError as error:
            self._failed(producer, topic, error)

    def _current(self, topic: str) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = self._make_producer()
                except KafkaError as error:
                    self._instruments.produce_failed(topic)
                    raise Unavailable(self._unavailable) from error
            return self._producer

    def _failed(self, producer: KafkaProducer, topic: str, error: KafkaError, records: int = 1) -> typing.NoReturn:
        log.warning("producing to %s failed: %s", topic, error)
        self._instruments.produce_failed(topic, records)
        with self._lock:
            if self._producer is producer:
                self._producer = None
        threading.Thread(target=close_quietly, args=(producer,), daemon=True).start()
        raise Unavailable(self._unavailable) from error

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)


class KafkaNotificationQueue(NotificationQueue):
    """New notifications go to the `notifications` topic, by user, for the dispatchers' group.

    By user: a user's notifications always go to the partition their id hashes
    to (partition_of), so one dispatcher handles a user's at a time, in order,
    which keeps the daily nudge cap exact. Several users' notifications that share a partition
    travel in one record (encode_notifications): an evaluation slot makes a
    hundred thousand of them, and kafka-python spends about as long on each
    record as the evaluator spends deciding the nudge.

    Upgrading from a release that sent one notification per record keyed by
    user: deploy the dispatchers first (an older dispatcher cannot read these
    records); until the older records are consumed, a user's notifications may
    sit on two partitions, which can let one extra nudge past that day's cap.
    """

    UNAVAILABLE = "the notification queue (Kafka) is unavailable; try again"
    # About 15 KB a record. Small enough that a dispatcher's poll of CHUNK notifications (its max_poll_records
    # is CHUNK // PER_RECORD) is handled well within Kafka's poll interval; large enough that a slot of
    # 100,000 nudges is 2,000 records, not 100,000.
    PER_RECORD = 50

    def __init__(
        self,
        make_producer: Callable[[], KafkaProducer],
        topic: str,
        timeout: float = 10.0,
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        self._producing = _Producing(make_producer, timeout, self.UNAVAILABLE, instruments)
        self._topic = topic

    def send(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        partitions = self._producing.partitions(self._topic)
        by_partition: dict[int, list[Notification]] = defaultdict(list)
        for notification in notifications:
            by_partition[partition_of(notification.user_id.encode(), partitions)].append(notification)
        records = [
            (None, encode_notifications(group[start : start + self.PER_RECORD]), partition)
            for partition, group in by_partition.items()
            for start in range(0, len(group), self.PER_RECORD)
        ]
        self._producing.send_all(self._topic, records)

    def close(self) -> None:
        self._producing.close()


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of a user's notifications. Any stable hash keeps them together, since this queue is the
    topic's only producer; CRC-32 is in C, where kafka-python's murmur2 costs 5 us of Python a call."""
    return partitions[zlib.crc32(key) % len(partitions)]


class KafkaDeadLetterLog(DeadLetterLog):
    """Dead letters as records of their own topic, which `fittrack-admin dead-letters list` reads."""

    UNAVAILABLE = "the dead-letter topic (Kafka) is unavailable; try again"

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        make_producer: Callable[[], KafkaProducer],
        timeout: float = 10.0,
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._producing = _Producing(make_producer, timeout, self.UNAVAILABLE, instruments)
        self._timeout = timeout

    def record(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            records = [(letter.notification.user_id.encode(), encode_dead_letter(letter), None) for letter in letters]
            self._producing.send_all(self._topic, records)

    def read(self) -> list[DeadLetter]:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_list(self._bootstrap),
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=int(self._timeout * 1000) + 1000,
            )
        except KafkaError as error:
            raise Unavailable(self.UNAVAILABLE) from error
        try:
            partitions = [
                TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            if not partitions:
                return []
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            read: list[tuple[int, int, DeadLetter]] = []
            while any(consumer.position(p) < end for p, end in ends.items()):
                polled = consumer.poll(timeout_ms=int(self._timeout * 1000))
                if not polled:
                    raise Unavailable(f"{self.UNAVAILABLE} (no records within {self._timeout:.0f} s)")
                for records in polled.values():
                    read += [(r.timestamp, r.offset, decode_dead_letter(r.value)) for r in records]
            return [letter for *_, letter in sorted(read, key=lambda item: item[:2])]
        except KafkaError as error:
            raise Unavailable(self.UNAVAILABLE) from error
        finally:
            consumer.close()

    def close(self) -> None:
        self._producing.close()
