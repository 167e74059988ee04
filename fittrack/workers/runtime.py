"""What every production worker process shares: its Kafka consumer and the consume-handle-commit loop.

Start-up and signals are the entrypoints' (fittrack/app/process.py)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.adapters.trace_context import context_from

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# How often a worker asks Kafka for its partitions' end offsets to export its lag: one request per interval,
# not one per poll.
LAG_SECONDS = 5.0


def make_consumer(config, topic: str, group: str, max_poll_records: int):
    from kafka import KafkaConsumer

    from fittrack.core.adapters.kafka import bootstrap_list

    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_list(config.kafka_bootstrap),
        group_id=group,
        # kafka-consumer-groups.sh --describe then tells which host and process holds each partition.
        client_id=f"{group}@{socket.gethostname()}:{os.getpid()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )


class ConsumerLoop:
    """Poll, handle, and only then commit; on a failure rewind, so the same records come again after a pause.

    A crash between the handler's writes and the commit hands the records to
    whoever owns the partition next, so handlers must be idempotent.
    Subclasses say how a poll's records are handled.
    """

    what = "worker"  # who, in the log and in the metrics' role label

    def __init__(
        self, consumer, *, instruments: Instruments = NO_INSTRUMENTS, lag_seconds: float = LAG_SECONDS
    ) -> None:
        self._consumer = consumer
        self._instruments = instruments
        self._lag = Every(lag_seconds, self.refresh_lag)
        self._lagging: set[tuple[str, int]] = set()  # the partitions whose lag is exported

    def handle(self, records: Sequence) -> None:
        raise NotImplementedError

    def before_commit(self) -> None:
        """Called between a poll's writes and its commit."""

    def upkeep(self) -> None:
        """Called after every poll, with records or without: chores that come due now and then."""

    def run_once(self, timeout_ms: int = 1000) -> int:
        """Handle one poll's records and commit them; returns how many there were."""
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        records = [record for partition_records in polled.values() for record in partition_records]
        if not records:
            return 0
        began = time.perf_counter()
        try:
            self.handle(records)
        except Exception:
            # Nothing was committed: rewind so the same records come again after the backoff.
            for partition, partition_records in polled.items():
                self._consumer.seek(partition, partition_records[0].offset)
            raise
        self.before_commit()
        self._consumer.commit()
        if self._instruments.enabled:
            self._instruments.applied(self.what, time.perf_counter() - began)
            for partition, partition_records in polled.items():
                self._instruments.consumed(self.what, partition.topic, len(partition_records))
        return len(records)

    def refresh_lag(self) -> None:
        """Export each assigned partition's lag: its end offset minus this consumer's position (committed, since
        a poll's records are committed before the next). Partitions given to another worker stop being exported."""
        if not self._instruments.enabled:
            return
        try:
            assigned = set(self._consumer.assignment())
            ends = self._consumer.end_offsets(list(assigned), timeout_ms=2000) if assigned else {}
            lags = {}
            for partition, end in ends.items():
                position = self._consumer.position(partition, timeout_ms=2000)
                if end is not None and position is not None:  # None: not known yet; the next round tries again
                    lags[partition.topic, partition.partition] = max(0, end - position)
        except Exception:  # noqa: BLE001 - a figure left stale until the next round; the poll loop meets the outage
            log.debug("could not read the consumer's lag", exc_info=True)
            return
        gone = self._lagging - set(lags)
        self._lagging = set(lags)
        self._instruments.lag(self.what, lags, gone)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.run_once()
                self.upkeep()
            except Exception:
                log.exception("%s could not handle a poll; retrying in %.0f s", self.what, RETRY_SECONDS)
                stopping.wait(RETRY_SECONDS)
            # After a failed poll too: a worker stuck on one batch is when its growing lag must show.
            self._lag()


@contextmanager
def traced_records(tracer: trace.Tracer, name: str, records: Sequence) -> Iterator[dict[int, trace.Span]]:
    """Spans for one poll's handling: one per record that carries trace context, each the child of its record's
    context (the server's batch, the evaluator's run), and each around the whole handling.

    A poll's records are handled in one write (one grouped store call for many users' batches), so no span can
    be the write of one batch alone. A span per record with its record's context as parent puts that write in
    the trace of every batch it stored, which is what following one batch from the device needs; one write
    span with links to each record would leave the batch's trace ending at Kafka. The spans share their times
    and say how many records the write held. A record without context (its sender was not tracing) gets none:
    there is no trace to join, and starting one per record would only add noise.

    Yields the spans by the position of their record in `records`.
    """
    spans: dict[int, trace.Span] = {}
    for position, record in enumerate(records):
        parent = context_from(getattr(record, "headers", None))
        if parent is None:
            continue
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.batch.message_count": len(records),
        }
        spans[position] = tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    try:
        yield spans
    except BaseException as error:
        for span in spans.values():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        for span in spans.values():
            span.end()


class Every:
    """A chore done at most once per interval, from the loop's own thread; the first call does it."""

    def __init__(
        self, seconds: float, chore: Callable[[], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._chore = chore
        self._clock = clock
        self._due = float("-inf")

    def __call__(self) -> None:
        now = self._clock()
        if now < self._due:
            return
        # Due again after the interval even when it fails: the error goes to the loop's log, not into a tight retry.
        self._due = now + self._seconds
        self._chore()
