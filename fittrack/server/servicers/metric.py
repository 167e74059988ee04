from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from google.rpc import code_pb2

from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.domain.errors import DomainError, InvalidArgument, ResourceExhausted
from fittrack.core.ports import PublishOutcome
from fittrack.core.services.metrics import Ingest, Metrics
from fittrack.generated.v1 import metric_pb2, metric_pb2_grpc
from fittrack.server import mapping
from fittrack.server.auth import current_principal
from fittrack.server.streams import OpenStreams

Ack = metric_pb2.BatchAck


@dataclass(frozen=True)
class _Hello:
    device_id: str


@dataclass(frozen=True)
class _InFlight:
    batch: metric_pb2.ReadingBatch
    stored: asyncio.Future  # resolves to the PublishOutcome
    readings: int
    began: float  # perf_counter when it was read: its ack's latency runs from here


@dataclass(frozen=True)
class _Rejected:
    batch: metric_pb2.ReadingBatch
    error: DomainError


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class MetricServicer(metric_pb2_grpc.MetricServiceServicer):
    def __init__(
        self, metrics: Metrics, streams: OpenStreams, window: int, instruments: Instruments = NO_INSTRUMENTS
    ) -> None:
        self._metrics = metrics
        self._streams = streams
        self._window = window
        self._instruments = instruments

    async def UploadReadings(self, request_iterator, context):
        """All or nothing: batches are checked as they arrive and published
        together once the stream ends, so one bad batch stores nothing."""
        principal = current_principal()
        with self._streams.hold(principal) as stream:
            ingest = await asyncio.to_thread(self._metrics.open_ingest, principal)
            accepted, readings = [], 0
            requests = aiter(request_iterator)
            while True:
                try:
                    # A client that stops sending holds its slot like an idle SyncReadings stream.
                    request = await stream.until_ended(anext(requests))
                except StopAsyncIteration:
                    break
                raw = mapping.raw_batch(request.batch)
                readings += len(raw.readings)
                try:
                    ingest.check_upload_size(readings)
                    accepted.append(ingest.check(raw, in_upload=len(accepted) + 1))
                except DomainError:
                    # All or nothing: every batch of the upload is refused with this one.
                    self._instruments.ingested("rejected", len(accepted) + 1, readings)
                    raise
            if not accepted:
                raise InvalidArgument("the upload contained no batches; send at least one batch of readings")
            began = time.perf_counter()
            self._instruments.in_flight(len(accepted))
            try:
                outcomes = await asyncio.wrap_future(ingest.submit(accepted))
            finally:
                self._instruments.in_flight(-len(accepted))
            self._instruments.acked(time.perf_counter() - began)
        stored = [b for b, outcome in zip(accepted, outcomes, strict=True) if outcome == PublishOutcome.ACCEPTED]
        if self._instruments.enabled:
            stored_readings = sum(len(b.readings) for b in stored)
            self._instruments.ingested("accepted", len(stored), stored_readings)
            total = sum(len(b.readings) for b in accepted)
            self._instruments.ingested("duplicate", len(accepted) - len(stored), total - stored_readings)
        minutes = [r.minute for b in accepted for r in b.readings]
        return metric_pb2.UploadSummary(
            batches_accepted=len(stored),
            batches_duplicate=len(accepted) - len(stored),
            readings_accepted=sum(len(b.readings) for b in stored),
            first_reading_time=mapping.timestamp_of_minute(min(minutes)),
            last_reading_time=mapping.timestamp_of_minute(max(minutes)),
        )

    async def SyncReadings(self, request_iterator, context):
        """One ack per batch, in the order sent, each once its batch is durable.

        A reader task takes batches off the stream, checks them and submits
        them to the bus, at most `window` ahead of the acks; with the window
        full it stops reading, and HTTP/2 flow control slows the device down.
        So a slow backend costs each stream at most `window` batches of memory.
        A bad batch is rejected in its ack and the stream goes on.
        """
        principal = current_principal()
        with self._streams.hold(principal) as stream:
            ingest = await asyncio.to_thread(self._metrics.open_ingest, principal)
            # A slot per message read and not yet answered: the reader waits for one before reading on.
            slots = asyncio.Semaphore(self._window)
            in_order: asyncio.Queue = asyncio.Queue()
            reader = asyncio.create_task(self._read_batches(request_iterator, ingest, slots, in_order))
            try:
                # Every wait gives way when the session ends, idle (waiting for a batch) or busy (storing one).
                while (item := await stream.until_ended(in_order.get())) is not _END:
                    if isinstance(item, _Failed):
                        raise item.error
                    yield await stream.until_ended(self._answer(item, ingest))
                    slots.release()
            finally:
                reader.cancel()

    async def _read_batches(
        self, request_iterator, ingest: Ingest, slots: asyncio.Semaphore, in_order: asyncio.Queue
    ) -> None:
        try:
            requests = aiter(request_iterator)
            while True:
                await slots.acquire()
                try:
                    request = await anext(requests)
                except StopAsyncIteration:
                    break
                if request.WhichOneof("message") == "hello":
                    in_order.put_nowait(_Hello(request.hello.device_id))
                    continue
                batch = request.batch
                began = time.perf_counter()
                try:
                    accepted = ingest.check(mapping.raw_batch(batch))
                except DomainError as error:
                    self._instruments.ingested("rejected", 1, len(batch.readings))
                    in_order.put_nowait(_Rejected(batch, error))
                    continue
                stored = asyncio.wrap_future(ingest.submit([accepted]))
                # If the call ends first, nobody awaits it; its failure is then no news.
                stored.add_done_callback(_retrieve)
                if self._instruments.enabled:
                    self._instruments.in_flight(1)
                    stored.add_done_callback(self._landed)
                in_order.put_nowait(_InFlight(batch, stored, len(accepted.readings), began))
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - handed to the writer, which ends the call with it
            in_order.put_nowait(_Failed(error))
            return
        in_order.put_nowait(_END)

    async def _answer(self, item, ingest: Ingest) -> metric_pb2.SyncReadingsResponse:
        if isinstance(item, _Hello):
            # Answered in turn: every batch sent before the hello is acknowledged by now, so counted in it.
            cursor = await asyncio.to_thread(ingest.resume_point, item.device_id)
            welcome = metric_pb2.SyncWelcome(
                device_id=item.device_id, last_durable_sequence=cursor.highest, missing_sequences=cursor.missing()
            )
            return metric_pb2.SyncReadingsResponse(welcome=welcome)
        if isinstance(item, _Rejected):
            code = (
                code_pb2.RESOURCE_EXHAUSTED if isinstance(item.error, ResourceExhausted) else code_pb2.INVALID_ARGUMENT
            )
            return _ack(item.batch, Ack.STATUS_REJECTED, reason=str(item.error), code=code)
        (outcome,) = await item.stored
        if outcome == PublishOutcome.ACCEPTED:
            self._acked("accepted", item)
            return _ack(item.batch, Ack.STATUS_ACCEPTED, readings=item.readings)
        self._acked("duplicate", item)
        return _ack(item.batch, Ack.STATUS_DUPLICATE)

    def _acked(self, outcome: str, item: _InFlight) -> None:
        if self._instruments.enabled:
            self._instruments.ingested(outcome, 1, item.readings)
            self._instruments.acked(time.perf_counter() - item.began)

    def _landed(self, _stored: asyncio.Future) -> None:
        self._instruments.in_flight(-1)

    async def ViewMetric(self, request, context):
        preset, explicit = mapping.view_range(request)
        summary = await asyncio.to_thread(self._metrics.view, current_principal(), request.metric, preset, explicit)
        return mapping.metric_view(summary)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _ack(batch: metric_pb2.ReadingBatch, status: int, reason: str = "", readings: int = 0, code: int = 0):
    ack = Ack(
        device_id=batch.device_id,
        sequence=batch.sequence,
        status=status,
        reason=reason,
        readings_accepted=readings,
        code=code,
    )
    return metric_pb2.SyncReadingsResponse(ack=ack)
