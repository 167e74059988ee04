"""Accepting device readings and viewing metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fittrack.core.domain.accounts import Principal
from fittrack.core.domain.aggregation import RangeSummary, summarize_range
from fittrack.core.domain.calendar import local_today, resolve_view_range, zone_named
from fittrack.core.domain.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from fittrack.core.domain.metrics import (
    AcceptedBatch,
    BatchLimits,
    MetricKind,
    batch_label,
    check_and_place,
    source_of,
    validate_batch_size,
    validate_device_id,
    validate_sequence,
)
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import AccountsUnitOfWork, MetricStore, ReadingBus


@dataclass(frozen=True, slots=True)
class RawBatch:
    """A batch as the client sent it: readings are (metric kind, UTC seconds, value)."""

    device_id: str
    sequence: int
    readings: Sequence[tuple[int, int, float]]


@dataclass(frozen=True)
class IngestLimits:
    batch: BatchLimits = BatchLimits()
    max_readings_per_upload: int = 200_000


class Ingest:
    """Validation and publishing for one stream of one user.

    The user's time zone is read once when the stream opens: it decides which
    local day each reading of the stream belongs to.
    """

    def __init__(self, user_id: str, zone: ZoneInfo, bus: ReadingBus, limits: IngestLimits, clock) -> None:
        self.user_id = user_id
        self._zone = zone
        self._bus = bus
        self._limits = limits
        self._now = clock

    def check(self, raw: RawBatch, in_upload: int | None = None) -> AcceptedBatch:
        """The batch ready to publish, or INVALID_ARGUMENT naming the batch and what is wrong in it.

        `in_upload` is the batch's place (from 1) in an UploadReadings call.
        """
        label = batch_label(raw.device_id, raw.sequence, in_upload)
        try:
            validate_device_id(raw.device_id)
            validate_sequence(raw.sequence)
            validate_batch_size(len(raw.readings), self._limits.batch)
        except (InvalidArgument, ResourceExhausted) as error:
            raise type(error)(f"{label}: {error}") from None
        placed = check_and_place(raw.readings, self._now(), self._zone, label)
        return AcceptedBatch(self.user_id, source_of(raw.device_id), raw.sequence, placed)

    def check_upload_size(self, readings_so_far: int) -> None:
        if readings_so_far > self._limits.max_readings_per_upload:
            raise ResourceExhausted(
                f"an upload may hold at most {self._limits.max_readings_per_upload:,} readings; "
                "split it into several uploads"
            )

    def publish(self, batches: Sequence[AcceptedBatch]) -> list[str]:
        return self._bus.publish(batches)

    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        """Publish without waiting; see ReadingBus.submit."""
        return self._bus.submit(batches)

    def resume_point(self, device_id: str) -> DeviceCursor:
        """Where a reconnecting device resumes: what the server holds of its batches."""
        validate_device_id(device_id)
        return self._bus.cursor(self.user_id, source_of(device_id))


class Metrics:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        store: MetricStore,
        bus: ReadingBus,
        clock: Callable[[], datetime],
        limits: IngestLimits,
    ) -> None:
        self._uow = uow
        self._store = store
        self._bus = bus
        self._now = clock
        self._limits = limits

    def zone_of(self, user_id: str) -> ZoneInfo:
        with self._uow() as uow:
            user = uow.users.get(user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        return zone_named(user.profile.time_zone)

    def open_ingest(self, principal: Principal) -> Ingest:
        return Ingest(principal.user_id, self.zone_of(principal.user_id), self._bus, self._limits, self._now)

    def view(
        self, principal: Principal, metric_value: int, preset: int | None, explicit: tuple[date, date] | None
    ) -> RangeSummary:
        metric = MetricKind.parse(metric_value)
        today = local_today(self.zone_of(principal.user_id), self._now())
        start, end = resolve_view_range(preset, explicit, today)
        return summarize_range(metric, start, end, self._store.days(principal.user_id, metric, start, end))
