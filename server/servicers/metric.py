from __future__ import annotations

import asyncio

from core.domain.errors import DomainError, InvalidArgument
from core.ports import PublishOutcome
from core.services.metrics import Metrics
from generated.fittrack.v1 import metric_pb2, metric_pb2_grpc
from server import mapping
from server.auth import SessionWatch, current_principal

Ack = metric_pb2.BatchAck


class MetricServicer(metric_pb2_grpc.MetricServiceServicer):
    def __init__(self, metrics: Metrics, check_session, recheck: float) -> None:
        self._metrics = metrics
        self._check_session = check_session
        self._recheck = recheck

    async def UploadReadings(self, request_iterator, context):
        """All or nothing: batches are checked as they arrive and published
        together once the stream ends, so one bad batch stores nothing."""
        ingest = await asyncio.to_thread(self._metrics.open_ingest, current_principal())
        accepted, readings = [], 0
        async for request in request_iterator:
            raw = mapping.raw_batch(request.batch)
            readings += len(raw.readings)
            ingest.check_upload_size(readings)
            accepted.append(ingest.check(raw, f"batch {len(accepted)}"))
        if not accepted:
            raise InvalidArgument("the upload contained no batches; send at least one batch of readings")
        outcomes = await asyncio.to_thread(ingest.publish, accepted)
        stored = [b for b, outcome in zip(accepted, outcomes, strict=True) if outcome == PublishOutcome.ACCEPTED]
        minutes = [r.minute for b in accepted for r in b.readings]
        return metric_pb2.UploadSummary(
            batches_accepted=len(stored),
            batches_duplicate=len(accepted) - len(stored),
            readings_accepted=sum(len(b.readings) for b in stored),
            first_reading_time=mapping.timestamp_of_minute(min(minutes)),
            last_reading_time=mapping.timestamp_of_minute(max(minutes)),
        )

    async def SyncReadings(self, request_iterator, context):
        """One ack per batch, in order, each sent once the batch is durable.
        A bad batch is rejected in its ack and the stream goes on."""
        principal = current_principal()
        ingest = await asyncio.to_thread(self._metrics.open_ingest, principal)
        watch = SessionWatch(self._check_session, principal, self._recheck)
        async for request in request_iterator:
            await watch.check()
            if request.WhichOneof("message") == "hello":
                device_id = request.hello.device_id
                last = await asyncio.to_thread(ingest.last_sequence, device_id)
                welcome = metric_pb2.SyncWelcome(device_id=device_id, last_durable_sequence=last)
                yield metric_pb2.SyncReadingsResponse(welcome=welcome)
                continue
            batch = request.batch
            try:
                accepted = ingest.check(mapping.raw_batch(batch))
            except DomainError as error:
                yield _ack(batch, Ack.STATUS_REJECTED, reason=str(error))
                continue
            (outcome,) = await asyncio.to_thread(ingest.publish, [accepted])
            if outcome == PublishOutcome.ACCEPTED:
                yield _ack(batch, Ack.STATUS_ACCEPTED, readings=len(accepted.readings))
            else:
                yield _ack(batch, Ack.STATUS_DUPLICATE)

    async def ViewMetric(self, request, context):
        preset, explicit = mapping.view_range(request)
        summary = await asyncio.to_thread(self._metrics.view, current_principal(), request.metric, preset, explicit)
        return mapping.metric_view(summary)


def _ack(batch: metric_pb2.ReadingBatch, status: int, reason: str = "", readings: int = 0):
    ack = Ack(
        device_id=batch.device_id,
        sequence=batch.sequence,
        status=status,
        reason=reason,
        readings_accepted=readings,
    )
    return metric_pb2.SyncReadingsResponse(ack=ack)
