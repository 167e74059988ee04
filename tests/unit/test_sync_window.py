"""SyncReadings under a stalled backend: the stream stops reading instead of queueing without bound."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from datetime import UTC, datetime

from fittrack.core.domain.accounts import Principal
from fittrack.core.services.metrics import RawBatch
from fittrack.generated.v1 import common_pb2, metric_pb2
from fittrack.server.auth import _principal
from fittrack.server.servicers.metric import MetricServicer
from fittrack.server.streams import OpenStreams
from tests.support import batch, reading

WINDOW = 4
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class StalledIngest:
    """Accepts every batch and never finishes storing any, like a bus whose broker hangs."""

    def __init__(self) -> None:
        self.submitted: list[Future] = []

    def check(self, raw: RawBatch, in_upload: int | None = None):
        return raw

    def submit(self, batches) -> Future:
        future: Future = Future()
        self.submitted.append(future)
        return future


class FakeMetrics:
    def __init__(self, ingest: StalledIngest) -> None:
        self.ingest = ingest

    def open_ingest(self, principal):
        return self.ingest


async def settle(rounds: int = 200) -> None:
    """Let every runnable task run until all wait on something; no time passes."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_a_stream_whose_batches_are_not_stored_stops_reading_after_its_window():
    async def scenario():
        _principal.set(Principal("u1", "s1"))
        ingest = StalledIngest()
        servicer = MetricServicer(FakeMetrics(ingest), OpenStreams(8, lambda principal: None, 60.0), WINDOW)
        pulled = 0
        minute = int(NOW.timestamp())

        async def requests():
            nonlocal pulled
            for sequence in range(1, 1001):
                pulled += 1
                readings = [reading(common_pb2.METRIC_KIND_STEPS, minute, 1)]
                yield metric_pb2.SyncReadingsRequest(batch=batch(readings, sequence=sequence))

        responses = servicer.SyncReadings(requests(), context=None)
        first_ack = asyncio.ensure_future(anext(responses))
        await settle()
        # The window's batches are in flight and nothing more is read.
        assert len(ingest.submitted) == WINDOW
        assert pulled == WINDOW
        assert not first_ack.done()
        # Storing the first batch lets exactly one more in.
        ingest.submitted[0].set_result(["accepted"])
        assert (await first_ack).ack.sequence == 1
        next_ack = asyncio.ensure_future(anext(responses))
        await settle()
        assert pulled == WINDOW + 1
        next_ack.cancel()
        await settle()

    asyncio.run(scenario())
