"""Apache Kafka adapters: the `readings` topic as the reading bus, `notifications` for goal alerts.

Batches are keyed by user id, so one user's batches stay in order on one
partition and only one persister (the partition's owner in the consumer
group) ever writes that user's metric documents.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.adapters.codec import decode_notification, encode_batch, encode_notification
from core.domain.errors import Unavailable
from core.domain.metrics import AcceptedBatch
from core.domain.notifications import Notification
from core.ports import NotificationSink, PublishOutcome, ReadingBus

log = logging.getLogger(__name__)

UNAVAILABLE = (
    "the reading bus (Kafka) is unavailable, so this request was not acknowledged; send it again "
    "(readings already stored are replaced, never counted twice)"
)


def bootstrap_list(bootstrap: str) -> list[str]:
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


def ensure_topics(bootstrap: str, partitions: dict[str, int], replication_factor: int) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_list(bootstrap), request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=replication_factor)
            for name, count in partitions.items()
            if name not in existing
        ]
        # Another process may create one between our look and our create.
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


def make_producer(bootstrap: str, publish_timeout_seconds: float) -> KafkaProducer:
    request_timeout_ms = 5_000
    return KafkaProducer(
        bootstrap_servers=bootstrap_list(bootstrap),
        # acks=all plus idempotence: an acknowledged batch is on every in-sync
        # replica, and a retried send is never written twice.
        acks="all",
        enable_idempotence=True,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=request_timeout_ms,
        delivery_timeout_ms=max(int(publish_timeout_seconds * 1000), request_timeout_ms + 100),
        # send() blocks while it has no metadata; bound it so an outage is
        # answered with UNAVAILABLE within a client's deadline.
        max_block_ms=2_000,
        linger_ms=1,
        compression_type=None,
    )


class KafkaLiveness:
    """Whether a Kafka broker accepts connections, checked by a cheap TCP connect.

    The server polls it to report the metric service NOT_SERVING and to refuse
    uploads at once, instead of letting them wait out a send timeout.
    """

    def __init__(self, bootstrap: str) -> None:
        self._addresses = []
        for server in bootstrap_list(bootstrap):
            host, _, port = server.rpartition(":")
            self._addresses.append((host, int(port)))
        self.up = True

    def check(self, timeout: float = 1.0) -> bool:
        for address in self._addresses:
            try:
                with socket.create_connection(address, timeout=timeout):
                    self.up = True
                    return True
            except OSError:
                continue
        self.up = False
        return False


class DeviceCursors:
    """What the bus needs to tell a resent batch from a new one (PostgresDeviceCursors implements it)."""

    def last_sequence(self, user_id: str, source: str) -> int: ...

    def advance(self, user_id: str, source: str, sequence: int) -> bool: ...


class KafkaReadingBus(ReadingBus):
    def __init__(
        self,
        make_producer: Callable[[], KafkaProducer],
        topic: str,
        cursors: DeviceCursors,
        liveness: KafkaLiveness,
        publish_timeout_seconds: float,
    ) -> None:
        self._make_producer = make_producer
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._topic = topic
        self._cursors = cursors
        self._liveness = liveness
        self._timeout = publish_timeout_seconds

    def publish(self, batches: Sequence[AcceptedBatch]) -> list[str]:
        if not self._liveness.up:
            raise Unavailable(UNAVAILABLE)
        outcomes = [
            PublishOutcome.DUPLICATE
            if batch.sequence and batch.sequence <= self._cursors.last_sequence(batch.user_id, batch.source)
            else PublishOutcome.ACCEPTED
            for batch in batches
        ]
        fresh = [b for b, outcome in zip(batches, outcomes, strict=True) if outcome == PublishOutcome.ACCEPTED]
        producer = self._current_producer()
        try:
            futures = [producer.send(self._topic, key=b.user_id.encode(), value=encode_batch(b)) for b in fresh]
            for future in futures:
                future.get(timeout=self._timeout)
        except KafkaError as error:
            log.warning("publishing %d batches failed: %s", len(fresh), error)
            self._discard(producer)
            raise Unavailable(UNAVAILABLE) from error
        # Cursors move only after Kafka acknowledged: a crash in between makes
        # the device resend, and the resend replaces the same minutes.
        for batch in fresh:
            if batch.sequence:
                self._cursors.advance(batch.user_id, batch.source, batch.sequence)
        return outcomes

    def _current_producer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                try:
                    self._producer = self._make_producer()
                except KafkaError as error:
                    raise Unavailable(UNAVAILABLE) from error
            return self._producer

    def _discard(self, producer: KafkaProducer) -> None:
        """Start over with a new producer after a failure.

        A broker killed mid-write can leave an idempotent producer with
        sequence numbers the restarted broker rejects, and it would then fail
        every send; a new producer gets a new producer id.
        """
        with self._producer_lock:
            if self._producer is producer:
                self._producer = None
        threading.Thread(target=_close_quietly, args=(producer,), daemon=True).start()

    def close(self) -> None:
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)

    def last_sequence(self, user_id: str, source: str) -> int:
        return self._cursors.last_sequence(user_id, source)


def _close_quietly(producer: KafkaProducer) -> None:
    """Close a producer given up on; what it still held was already answered UNAVAILABLE."""
    with contextlib.suppress(KafkaError):
        producer.close(timeout=0)


class KafkaNotificationSink(NotificationSink):
    """The persister's side: stored notifications go to the `notifications` topic."""

    def __init__(self, producer: KafkaProducer, topic: str, timeout: float = 10.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout

    def deliver(self, notification: Notification) -> None:
        future = self._producer.send(
            self._topic, key=notification.user_id.encode(), value=encode_notification(notification)
        )
        future.get(timeout=self._timeout)


class NotificationRelay:
    """The server's side: every server reads the whole `notifications` topic from
    its end and hands each notification to its own open in-app streams.

    No consumer group: every server instance must see every notification,
    since the user's stream may be open on any of them.
    """

    def __init__(self, bootstrap: str, topic: str, deliver: Callable[[Notification], None]) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._deliver = deliver
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
                        self._deliver(decode_notification(record.value))
            except Exception:
                log.warning("notification relay lost Kafka; reconnecting", exc_info=True)
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stopping.wait(1.0)
        if consumer is not None:
            consumer.close()

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
