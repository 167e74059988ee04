"""Apache Kafka adapters: the `readings` topic as the reading bus, `notifications` for goal alerts.

Batches are keyed by user id, so one user's batches stay in order on one
partition and only one persister (the partition's owner in the consumer
group) ever writes that user's metric documents.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
import typing
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from fittrack.core.adapters.codec import (
    decode_dead_letter,
    decode_notification,
    encode_batch,
    encode_dead_letter,
    encode_notification,
    encode_notifications,
)
from fittrack.core.adapters.futures import fail, resolve, submission_groups
from fittrack.core.domain.delivery import DeadLetter
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import AcceptedBatch
from fittrack.core.domain.notifications import Notification
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import DeadLetterLog, NotificationQueue, NotificationSink, PublishOutcome, ReadingBus

log = logging.getLogger(__name__)

UNAVAILABLE = (
    "the reading bus (Kafka) is unavailable, so this request was not acknowledged; send it again "
    "(readings already stored are replaced, never counted twice)"
)


def bootstrap_list(bootstrap: str) -> list[str]:
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


def ensure_topics(
    bootstrap: str, partitions: dict[str, int], replication_factor: int, wait_seconds: float = 0.0
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    A process often starts while Kafka is still starting or restarting, so it asks
    again, with growing pauses, for up to `wait_seconds` before it gives up.
    """
    deadline = time.monotonic() + wait_seconds
    pause = 0.5
    while True:
        try:
            _create_missing_topics(bootstrap, partitions, replication_factor)
            return
        except KafkaError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(
                    f"Kafka at {bootstrap} did not answer for {wait_seconds:.0f} s ({type(error).__name__}); "
                    "start it, or check FITTRACK_KAFKA_BOOTSTRAP"
                ) from error
            log.warning("Kafka is not reachable yet (%s); asking again in %.1f s", type(error).__name__, pause)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


def _create_missing_topics(bootstrap: str, partitions: dict[str, int], replication_factor: int) -> None:
    # Short attempts: the waiting is ensure_topics's, where it is logged and bounded.
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_list(bootstrap), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
    )
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
        # kafka-python bootstraps from one broker picked at random and gives it the whole timeout: a broker
        # whose host is cut off would hold a new producer (one replaces a failed one) for 30 s by default.
        bootstrap_timeout_ms=5_000,
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


class DeviceCursors(Protocol):
    """Where the bus keeps which sequences each device has made durable (PostgresDeviceCursors)."""

    def load(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], DeviceCursor]: ...

    def save(self, cursors: dict[tuple[str, str], DeviceCursor]) -> None: ...


class KafkaReadingBus(ReadingBus):
    """Publishes accepted batches to the `readings` topic without a thread per batch.

    One publisher thread takes every submitted batch, tells new batches from
    resent ones with cursors it caches in memory, and hands the new ones to
    the producer; the producer's callbacks resolve each submission once Kafka
    acknowledged all of its batches. The cursors are written to PostgreSQL in
    the background, a few times a second, in one statement.

    Nothing here decides what is counted: a batch published twice (a cursor
    lost in a crash, a device that moved to another server) replaces the same
    minutes in the store. The cursors only save that work and tell devices
    where to resume; they move only after Kafka acknowledged, so they never
    claim more than is durable.
    """

    CACHE_LIMIT = 200_000  # (user, source) cursors kept in memory; about 200 bytes each
    FLUSH_SECONDS = 0.25
    # A submission still unanswered this long after its publish timeout is failed by the bus itself. The
    # producer's own delivery timeout normally answers first; this covers a producer that never calls back
    # (seen after Kafka was killed and restarted: one batch had no answer for ten minutes).
    SETTLE_MARGIN_SECONDS = 1.0

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
        self._cache: dict[tuple[str, str], DeviceCursor] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._in_flight: Counter[tuple[str, str, int]] = Counter()
        self._cache_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Sequence[AcceptedBatch], Future] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        # When each submission must be answered by: those still queued (by future), then those with the producer.
        self._queued: dict[Future, float] = {}
        self._sending: dict[_Submission, float] = {}
        self._open_lock = threading.Lock()

    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        future: Future[list[str]] = Future()
        if not self._liveness.up:
            fail(future, Unavailable(UNAVAILABLE))
            return future
        self._start_threads()
        with self._open_lock:
            self._queued[future] = time.monotonic() + self._timeout + self.SETTLE_MARGIN_SECONDS
        self._queue.put((batches, future))
        return future

    def fail_overdue(self) -> int:
        """Answer UNAVAILABLE to every submission past its deadline, whatever the producer does; how many."""
        now = time.monotonic()
        with self._open_lock:
            queued = [future for future, due in self._queued.items() if due <= now]
            for future in queued:
                del self._queued[future]
            sending = [submission for submission, due in self._sending.items() if due <= now]
        for future in queued:
            fail(future, Unavailable(UNAVAILABLE))  # still waiting behind a stuck publisher
        for submission in sending:
            # Also throws the producer away: one that lost track of a batch is not trusted with more.
            submission.failed(KafkaTimeoutError("no answer from Kafka within the publish timeout"))
        return len(queued) + len(sending)

    def _start_threads(self) -> None:
        with self._threads_lock:
            if not self._threads and not self._stopping.is_set():
                self._threads = [
                    threading.Thread(target=self._publish_loop, name="reading-publisher", daemon=True),
                    threading.Thread(target=self._flush_loop, name="cursor-flusher", daemon=True),
                ]
                for thread in self._threads:
                    thread.start()

    def _publish_loop(self) -> None:
        for group in submission_groups(self._queue):
            try:
                self._publish_group(group)
            except Exception as error:  # noqa: BLE001 - every waiting stream must hear of it
                if not isinstance(error, Unavailable):
                    log.warning("publishing %d submissions failed", len(group), exc_info=True)
                for _, future in group:
                    fail(future, Unavailable(UNAVAILABLE))

    def _publish_group(self, group: list[tuple[Sequence[AcceptedBatch], Future]]) -> None:
        self._cache_missing({(b.user_id, b.source) for batches, _ in group for b in batches if b.sequence})
        producer = self._current_producer()
        for batches, future in group:
            with self._open_lock:
                deadline = self._queued.pop(future, None)
            if deadline is None:
                continue  # answered already: failed as overdue while it waited here
            outcomes, to_send = self._classify(batches)
            if not to_send:
                resolve(future, outcomes)
                continue
            waiting = _Submission(self, producer, to_send, outcomes, future)
            with self._open_lock:
                self._sending[waiting] = deadline
            try:
                for batch in to_send:
                    send = producer.send(self._topic, key=batch.user_id.encode(), value=encode_batch(batch))
                    send.add_callback(waiting.one_sent).add_errback(waiting.failed)
            except KafkaError as error:
                waiting.failed(error)
                raise Unavailable(UNAVAILABLE) from error

    def _classify(self, batches: Sequence[AcceptedBatch]) -> tuple[list[str], list[AcceptedBatch]]:
        """The outcome of each batch, and those to send.

        A resend of a batch still on its way to Kafka is answered DUPLICATE
        but sent as well: if the first copy fails, the second still stores it.
        """
        outcomes, to_send = [], []
        with self._cache_lock:
            for batch in batches:
                if not batch.sequence:
                    outcomes.append(PublishOutcome.ACCEPTED)
                    to_send.append(batch)
                    continue
                if self._cache.get((batch.user_id, batch.source), _NOTHING).holds(batch.sequence):
                    outcomes.append(PublishOutcome.DUPLICATE)
                    continue
                tag = (batch.user_id, batch.source, batch.sequence)
                outcomes.append(PublishOutcome.DUPLICATE if self._in_flight[tag] else PublishOutcome.ACCEPTED)
                self._in_flight[tag] += 1
                to_send.append(batch)
        return outcomes, to_send

    def _settled(self, submission: _Submission, batches: Sequence[AcceptedBatch], durable: bool) -> None:
        """A submission is over: its batches are no longer in flight, and if it succeeded the cursors claim them."""
        with self._open_lock:
            self._sending.pop(submission, None)
        with self._cache_lock:
            for batch in batches:
                if not batch.sequence:
                    continue
                key = (batch.user_id, batch.source)
                tag = (*key, batch.sequence)
                self._in_flight[tag] -= 1
                if self._in_flight[tag] <= 0:
                    del self._in_flight[tag]
                if durable:
                    self._cache[key] = self._cache.get(key, _NOTHING).with_durable(batch.sequence)
                    self._dirty.add(key)

    def _cache_missing(self, keys: set[tuple[str, str]]) -> None:
        with self._cache_lock:
            missing = [key for key in keys if key not in self._cache]
        if not missing:
            return
        try:
            loaded = self._cursors.load(missing)
        except Exception as error:
            raise Unavailable(UNAVAILABLE) from error
        with self._cache_lock:
            if len(self._cache) + len(missing) > self.CACHE_LIMIT:
                self._cache = {key: self._cache[key] for key in self._dirty}
            for key in missing:
                self._cache.setdefault(key, loaded.get(key, _NOTHING))

    def _flush_loop(self) -> None:
        while not self._stopping.wait(self.FLUSH_SECONDS):
            # First: storing the cursors can wait seconds on an unreachable PostgreSQL.
            self.fail_overdue()
            self.flush_cursors()

    def flush_cursors(self) -> None:
        with self._cache_lock:
            dirty = {key: self._cache[key] for key in self._dirty if key in self._cache}
            self._dirty.clear()
        if not dirty:
            return
        try:
            self._cursors.save(dirty)
        except Exception:  # noqa: BLE001 - kept dirty and tried again; devices resend meanwhile
            log.warning("could not store %d device cursors; will retry", len(dirty), exc_info=True)
            with self._cache_lock:
                self._dirty.update(dirty)

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
            if self._producer is not producer:
                return
            self._producer = None
        threading.Thread(target=_close_quietly, args=(producer,), daemon=True).start()

    def close(self) -> None:
        self._stopping.set()
        with self._threads_lock:
            threads, self._threads = self._threads, []
        if threads:
            self._queue.put(None)
            for thread in threads:
                thread.join(timeout=10)
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)
        self.flush_cursors()

    def cursor(self, user_id: str, source: str) -> DeviceCursor:
        """Fresh from PostgreSQL, merged with what this server holds but has not stored yet."""
        key = (user_id, source)
        try:
            stored = self._cursors.load([key]).get(key, _NOTHING)
        except Exception as error:
            raise Unavailable("the account database is unavailable; try again") from error
        with self._cache_lock:
            cursor = self._cache.get(key, _NOTHING).merged(stored)
            self._cache[key] = cursor
        return cursor


_NOTHING = DeviceCursor()


class _Submission:
    """One submit's batches in the producer: resolved when the last is acknowledged, failed at the first error."""

    def __init__(self, bus: KafkaReadingBus, producer, batches, outcomes, future: Future) -> None:
        self._bus = bus
        self._producer = producer
        self._batches = batches
        self._outcomes = outcomes
        self._future = future
        self._left = len(batches)
        self._over = False
        self._lock = threading.Lock()

    def _end(self) -> bool:
        """True for the one caller that ends the submission."""
        with self._lock:
            over, self._over = self._over, True
        return not over

    def one_sent(self, _metadata) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last and self._end():
            self._bus._settled(self, self._batches, durable=True)
            resolve(self._future, self._outcomes)

    def failed(self, error) -> None:
        log.warning("publishing a batch failed: %s", error)
        self._bus._discard(self._producer)
        if self._end():
            self._bus._settled(self, self._batches, durable=False)
            fail(self._future, Unavailable(UNAVAILABLE))


def _close_quietly(producer: KafkaProducer) -> None:
    """Close a producer given up on; what it still held was already answered UNAVAILABLE.

    kafka-python's close() flushes first and gives up half-closed when the flush times
    out, leaving the garbage collector to try again. Waiting out the delivery timeout
    lets every pending record succeed or expire, so the close completes here, on this
    background thread.
    """
    delivery_timeout = producer.config["delivery_timeout_ms"] / 1000
    with contextlib.suppress(KafkaError):
        producer.close(timeout=delivery_timeout + 1)


class KafkaNotificationSink(NotificationSink):
    """The dispatcher's side: stored notifications go to the live topic, which every server relays."""

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

    def __init__(self, make_producer: Callable[[], KafkaProducer], timeout: float, unavailable: str) -> None:
        self._make_producer = make_producer
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._timeout = timeout
        self._unavailable = unavailable

    def send_all(self, topic: str, records: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        """Produce the (key, value, partition) records and wait until Kafka acknowledged all of them;
        Unavailable otherwise. A record without a partition goes where its key hashes to."""
        producer = self._current()
        try:
            sent = [producer.send(topic, key=key, value=value, partition=part) for key, value, part in records]
            for future in sent:
                future.get(timeout=self._timeout)
        except KafkaError as error:
            self._failed(producer, topic, error)

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, in order, as the producer's metadata has them."""
        producer = self._current()
        try:
            return sorted(producer.partitions_for(topic))
        except KafkaError as error:
            self._failed(producer, topic, error)

    def _current(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = self._make_producer()
                except KafkaError as error:
                    raise Unavailable(self._unavailable) from error
            return self._producer

    def _failed(self, producer: KafkaProducer, topic: str, error: KafkaError) -> typing.NoReturn:
        log.warning("producing to %s failed: %s", topic, error)
        with self._lock:
            if self._producer is producer:
                self._producer = None
        threading.Thread(target=_close_quietly, args=(producer,), daemon=True).start()
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

    def __init__(self, make_producer: Callable[[], KafkaProducer], topic: str, timeout: float = 10.0) -> None:
        self._producing = _Producing(make_producer, timeout, self.UNAVAILABLE)
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
        self, bootstrap: str, topic: str, make_producer: Callable[[], KafkaProducer], timeout: float = 10.0
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._producing = _Producing(make_producer, timeout, self.UNAVAILABLE)
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
