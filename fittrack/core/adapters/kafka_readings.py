"""The `readings` topic as the reading bus: batches keyed by user id, so one user's batches stay in order on
one partition and only one persister (the partition's owner in the consumer group) writes that user's documents."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from fittrack.core.adapters.codec import (
    encode_batch,
)
from fittrack.core.adapters.futures import fail, resolve, submission_groups
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.adapters.kafka import UNAVAILABLE, KafkaLiveness, close_quietly
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import AcceptedBatch
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import PublishOutcome, ReadingBus

log = logging.getLogger(__name__)


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
        instruments: Instruments = NO_INSTRUMENTS,
    ) -> None:
        self._make_producer = make_producer
        self._instruments = instruments
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
                    self._instruments.produce_failed(self._topic)
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
        threading.Thread(target=close_quietly, args=(producer,), daemon=True).start()

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
        self._bus._instruments.produce_failed(self._bus._topic)
        self._bus._discard(self._producer)
        if self._end():
            self._bus._settled(self, self._batches, durable=False)
            fail(self._future, Unavailable(UNAVAILABLE))
