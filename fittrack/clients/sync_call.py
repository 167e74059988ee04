"""One device's readings synced in one SyncReadings call, counting the acks: the simple client the CLI's
`simulate day` and the tests use. A real wearable's loop (windows, drops, resuming) is fittrack/clients/sync.py.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fittrack.clients.sync import (
    SimulatedReading,
    reading_message,
    rejection,
)
from fittrack.generated.v1 import metric_pb2, metric_pb2_grpc

DEFAULT_BATCH_SIZE = 60


@dataclass
class SyncResult:
    """What the server answered to one device's sync."""

    device_id: str
    resumed_after: int = 0
    batches_accepted: int = 0
    batches_duplicate: int = 0
    batches_rejected: int = 0
    readings_accepted: int = 0
    rejections: list[str] = field(default_factory=list)


def sync_readings(
    stub: metric_pb2_grpc.MetricServiceStub,
    readings: Sequence[SimulatedReading],
    device_id: str,
    metadata: Sequence[tuple[str, str]] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout: float | None = None,
) -> SyncResult:
    """Say hello, then send the readings in numbered batches after the last durable one, and count the acks."""
    outbox: queue.Queue[metric_pb2.SyncReadingsRequest | None] = queue.Queue()

    def requests() -> Iterator[metric_pb2.SyncReadingsRequest]:
        while (request := outbox.get()) is not None:
            yield request

    outbox.put(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device_id)))
    responses = stub.SyncReadings(requests(), metadata=list(metadata), timeout=timeout)
    try:
        first = next(responses)
        if first.WhichOneof("message") != "welcome":
            raise RuntimeError(f"the server answered the hello with {first.WhichOneof('message')!r}, not a welcome")
        result = SyncResult(device_id, resumed_after=first.welcome.last_durable_sequence)
        # The sequence only has to grow; numbering after the durable one lets the server spot resends.
        for offset in range(0, len(readings), batch_size):
            batch = metric_pb2.ReadingBatch(
                device_id=device_id,
                sequence=result.resumed_after + 1 + offset // batch_size,
                readings=[reading_message(*reading) for reading in readings[offset : offset + batch_size]],
            )
            outbox.put(metric_pb2.SyncReadingsRequest(batch=batch))
        outbox.put(None)
        for response in responses:
            _count(result, response.ack)
        return result
    finally:
        # Ends the request generator if the call failed before it was told to stop.
        outbox.put(None)


def _count(result: SyncResult, ack: metric_pb2.BatchAck) -> None:
    if ack.status == metric_pb2.BatchAck.STATUS_ACCEPTED:
        result.batches_accepted += 1
        result.readings_accepted += ack.readings_accepted
    elif ack.status == metric_pb2.BatchAck.STATUS_DUPLICATE:
        result.batches_duplicate += 1
    else:
        result.batches_rejected += 1
        result.rejections.append(rejection(ack.sequence, ack.reason))
