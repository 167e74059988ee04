"""The production reading bus without a broker: every submission is answered within its publish timeout."""

from __future__ import annotations

import time
from datetime import date
from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from fittrack.core.adapters.kafka_readings import KafkaReadingBus
from fittrack.core.adapters.trace_context import context_from
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import PublishOutcome
from tests.support import eventually

TIMEOUT = 0.5


class Send:
    """kafka-python's FutureRecordMetadata as the bus uses it: callbacks, called when the producer says so."""

    def __init__(self) -> None:
        self.callbacks, self.errbacks = [], []

    def add_callback(self, callback):
        self.callbacks.append(callback)
        return self

    def add_errback(self, errback):
        self.errbacks.append(errback)
        return self

    def acknowledge(self) -> None:
        for callback in self.callbacks:
            callback(None)


class Producer:
    """Takes every record and answers only when told: a producer that lost track of its batches never does."""

    def __init__(self) -> None:
        self.config = {"delivery_timeout_ms": 100}
        self.sends: list[Send] = []
        self.headers: list = []
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes, headers=None) -> Send:
        self.sends.append(Send())
        self.headers.append(headers)
        return self.sends[-1]

    def close(self, timeout: float = 0) -> None:
        self.closed = True


class Cursors:
    def load(self, keys):
        return {}

    def save(self, cursors: dict[tuple[str, str], DeviceCursor]) -> None:
        pass


def a_batch(sequence: int) -> AcceptedBatch:
    reading = PlacedReading(MetricKind.STEPS, 29_000_000, 5.0, date(2025, 2, 19))
    return AcceptedBatch("u1", "watch", sequence, (reading,))


@pytest.fixture
def producers():
    return []


@pytest.fixture
def bus(producers):
    def make():
        producers.append(Producer())
        return producers[-1]

    bus = KafkaReadingBus(make, "readings", Cursors(), SimpleNamespace(up=True), TIMEOUT)
    yield bus
    bus.close()


def test_a_batch_kafka_never_answers_for_is_answered_unavailable_soon_after_the_publish_timeout(bus, producers):
    started = time.monotonic()
    future = bus.submit([a_batch(1)])
    assert isinstance(future.exception(timeout=10), Unavailable)
    elapsed = time.monotonic() - started
    assert TIMEOUT <= elapsed < TIMEOUT + KafkaReadingBus.SETTLE_MARGIN_SECONDS + 1
    # The producer that lost the batch is replaced; the resend goes through a new one and is not a duplicate.
    again = bus.submit([a_batch(1)])
    eventually(lambda: len(producers) == 2 and producers[1].sends, bool)
    assert not again.done()
    producers[1].sends[0].acknowledge()
    assert again.result(timeout=5) == [PublishOutcome.ACCEPTED]
    assert producers[0].closed


def test_a_batch_acknowledged_in_time_is_accepted_and_its_resend_is_a_duplicate(bus, producers):
    future = bus.submit([a_batch(1)])
    eventually(lambda: producers and producers[0].sends, bool)
    producers[0].sends[0].acknowledge()
    assert future.result(timeout=5) == [PublishOutcome.ACCEPTED]
    assert bus.submit([a_batch(1)]).result(timeout=5) == [PublishOutcome.DUPLICATE]


def test_a_batch_submitted_inside_a_span_carries_its_trace_context_and_one_outside_carries_no_headers(bus, producers):
    with TracerProvider().get_tracer("test").start_as_current_span("a batch") as span:
        traced = bus.submit([a_batch(1)])
    untraced = bus.submit([a_batch(2)])
    eventually(lambda: producers and len(producers[0].sends) == 2, bool)
    for send in producers[0].sends:
        send.acknowledge()
    assert traced.result(timeout=5) == untraced.result(timeout=5) == [PublishOutcome.ACCEPTED]
    carried = context_from(producers[0].headers[0])
    assert trace.get_current_span(carried).get_span_context().span_id == span.get_span_context().span_id
    assert producers[0].headers[1] is None
