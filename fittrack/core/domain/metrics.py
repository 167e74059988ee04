"""Metric kinds, readings and the rules a reading must obey."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fittrack.core.domain.errors import InvalidArgument, ResourceExhausted
from fittrack.core.domain.wording import instant, instant_of, number

MINUTE = 60
FUTURE_TOLERANCE = timedelta(hours=24)
# Nothing a wearable reports predates this; older times are a clock or encoding bug.
EARLIEST_READING = datetime(2000, 1, 1, tzinfo=UTC)
# Far beyond any accepted reading, but inside what datetime can represent: the fast check's bound.
LATEST_REPRESENTABLE = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())
MAX_DEVICE_ID_LENGTH = 64
MANUAL_SOURCE = "manual"


@dataclass(frozen=True, slots=True)
class KindFacts:
    """Everything the code knows about one metric kind; MetricKind below is the table of them."""

    number: int  # the wire's (common.proto MetricKind) and the databases' id
    key: str  # the one name: the CLI's, the upload files' and the report CSV's column
    title: str  # how a chart and the PDF's table head it
    unit: str  # the stored unit, in which the wire and the databases carry amounts
    # What one minute can physically hold, in the stored unit; a reading outside is refused.
    per_minute: tuple[float, float]
    # True: a day is the sum of its minutes (and a goal sums days); False: the average of its minutes.
    is_cumulative: bool
    # The largest daily goal target a person can reach (a weekly one may be 7 times it); None: no goals.
    daily_goal_ceiling: float | None
    # What a minute's brisk walk adds, to suggest how to close a goal's gap (for an adult about 100 steps,
    # 5 kcal and 80 m: precise enough for a suggestion); None: walking does not close it.
    per_walking_minute: float | None
    # How a person reads amounts: in shown_unit (default: the stored unit), stored_per_shown stored units
    # to one shown, with this many decimals at most (0: fractions mean nothing to a person).
    shown_unit: str = ""
    stored_per_shown: int = 1
    decimals: int = 0


class MetricKind(enum.IntEnum):
    """What a reading measures, each with its facts: the one table to extend with a new metric (README.md,
    "Adding a metric"). A member is its number (an IntEnum) and carries the rest as attributes."""

    STEPS = KindFacts(
        1,
        key="steps",
        title="Steps",
        unit="steps",
        # A sprinting human takes ~250 steps a minute: 1,000 is generous yet catches corrupt counters.
        per_minute=(0, 1000),
        is_cumulative=True,
        daily_goal_ceiling=200_000,
        per_walking_minute=100.0,
    )
    CALORIES_BURNED = KindFacts(
        2,
        key="calories",
        title="Calories burned",
        unit="kcal",
        per_minute=(0, 100),
        is_cumulative=True,
        daily_goal_ceiling=20_000,
        per_walking_minute=5.0,
    )
    DISTANCE = KindFacts(
        3,
        key="distance",
        title="Distance",
        unit="m",
        per_minute=(0, 1500),
        is_cumulative=True,
        daily_goal_ceiling=500_000,
        per_walking_minute=80.0,
        # Stored in metres; people read kilometres.
        shown_unit="km",
        stored_per_shown=1000,
        decimals=2,
    )
    ACTIVE_MINUTES = KindFacts(
        4,
        key="active_minutes",
        title="Active minutes",
        unit="min",
        per_minute=(0, 1),
        is_cumulative=True,
        daily_goal_ceiling=1_440,
        per_walking_minute=1.0,  # a minute's brisk walk is an active minute
    )
    HEART_RATE = KindFacts(
        5,
        key="heart_rate",
        title="Heart rate",
        unit="bpm",
        per_minute=(20, 250),
        is_cumulative=False,  # a day's heart rate is the average of its minutes
        daily_goal_ceiling=None,
        per_walking_minute=None,
    )

    # The facts, set on each member from its KindFacts.
    key: str
    title: str
    unit: str
    per_minute: tuple[float, float]
    is_cumulative: bool
    daily_goal_ceiling: float | None
    per_walking_minute: float | None
    shown_unit: str
    stored_per_shown: int
    decimals: int

    def __new__(cls, facts: KindFacts) -> MetricKind:
        if facts.daily_goal_ceiling is not None and not facts.is_cumulative:
            # A goal's progress is the sum of its days, which only a cumulative kind has.
            raise ValueError(f"{facts.key}: only a cumulative metric can take goals")
        member = int.__new__(cls, facts.number)
        member._value_ = facts.number
        for field in dataclasses.fields(KindFacts)[1:]:
            setattr(member, field.name, getattr(facts, field.name))
        member.shown_unit = facts.shown_unit or facts.unit
        return member

    @property
    def label(self) -> str:
        """How a sentence names the kind: `calories burned`, `heart rate`."""
        return self.name.lower().replace("_", " ")

    @property
    def takes_goals(self) -> bool:
        return self.daily_goal_ceiling is not None

    def shown(self, stored: float) -> float:
        """A stored amount in the unit people read it in (shown_unit)."""
        return stored / self.stored_per_shown

    @classmethod
    def parse(cls, value: int) -> MetricKind:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(f"{k.name} ({k.value})" for k in cls)
            raise InvalidArgument(f"unknown metric kind {value}; use one of {names}") from None


# Reading and PlacedReading are made by the hundred thousand a second on the
# ingest path; a frozen dataclass costs eight times as much to construct, so
# these are plain slotted dataclasses that nothing mutates.
@dataclass(slots=True)
class Reading:
    """One minute of one metric from one source, as the device sent it."""

    metric: MetricKind
    minute: int  # start of the minute, in whole minutes since the Unix epoch (UTC)
    value: float


@dataclass(slots=True)
class PlacedReading:
    """A reading with the user's local day it belongs to, fixed when it is accepted."""

    metric: MetricKind
    minute: int
    value: float
    local_date: date


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    """A validated batch on its way from the server to the persister."""

    user_id: str
    source: str
    sequence: int
    readings: tuple[PlacedReading, ...]

    @property
    def key(self) -> tuple[str, str, int]:
        """Which numbered batch of which device this is (domain.sequences.BatchKey)."""
        return (self.user_id, self.source, self.sequence)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_readings_per_batch: int = 1000


def source_of(device_id: str) -> str:
    """The name readings are stored under; readings without a device are manual entries."""
    return device_id or MANUAL_SOURCE


def validate_device_id(device_id: str) -> None:
    if len(device_id) > MAX_DEVICE_ID_LENGTH:
        raise InvalidArgument(f"device_id is {len(device_id)} characters long; at most {MAX_DEVICE_ID_LENGTH}")
    if not device_id.isprintable():
        raise InvalidArgument("device_id must contain printable characters only")


MAX_SEQUENCE = 2**63 - 1  # what a signed 64-bit column holds


def validate_sequence(sequence: int) -> None:
    if sequence > MAX_SEQUENCE:
        raise InvalidArgument(f"sequence {sequence} is too large; at most {MAX_SEQUENCE}")


def batch_label(device_id: str, sequence: int, in_upload: int | None = None) -> str:
    """How a message names a batch: by its device and sequence, as the client knows it.

    `in_upload` (1-based) is the batch's place in an UploadReadings call,
    named only when the batch has no sequence to tell it by. A device id or
    sequence that is itself invalid is left out: the message is about it.
    """
    numbered = 0 < sequence <= MAX_SEQUENCE
    if not device_id:
        source = "of manual entries"
    elif len(device_id) <= MAX_DEVICE_ID_LENGTH and device_id.isprintable():
        source = f"from device {device_id}"
    else:
        source = ""
    label = "batch"
    if in_upload is not None and not numbered:
        label += f" {in_upload} of the upload"
        source = source.removeprefix("of ")
        label += f" ({source})" if source else ""
    elif source:
        label += f" {source}"
    return f"{label}, sequence {sequence}" if numbered else label


def reading_label(position: int, count: int | None = None, batch: str = "") -> str:
    """`position` is 0-based; people count from 1, and "of 500" says it is not a sequence number."""
    where = f"reading {position + 1}" + (f" of {count:,}" if count is not None else "")
    return f"{batch}, {where}" if batch else where


def validate_reading(
    metric_value: int,
    seconds: int,
    value: float,
    now: datetime,
    position: int,
    count: int | None = None,
    batch: str = "",
) -> Reading:
    """Check one raw reading and normalise its time to the start of its minute.

    `position` (0-based) of `count` readings, and the `batch` (batch_label),
    go into every message, counted from 1, so a client can find the bad reading.
    """
    where = reading_label(position, count, batch)
    try:
        metric = MetricKind(metric_value)
    except ValueError:
        names = ", ".join(f"{k.name} ({k.value})" for k in MetricKind)
        raise InvalidArgument(f"{where}: unknown metric kind {metric_value}; use one of {names}") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"{where}: value must be a finite number, got {value}")
    low, high = metric.per_minute
    if value < 0:
        raise InvalidArgument(f"{where}: {metric.label} cannot be negative (got {number(value)})")
    if not low <= value <= high:
        raise InvalidArgument(
            f"{where}: {number(value)} {metric.unit} is impossible for {metric.label} in one minute; "
            f"expected {number(low)} to {number(high)}"
        )
    if seconds == 0:
        raise InvalidArgument(f"{where}: time is missing; set it to the start of the minute measured, in UTC")
    moment = instant_of(seconds)
    if moment is None:
        side = "before the year 1" if seconds < 0 else "after the year 9999"
        raise InvalidArgument(f"{where}: time {seconds} s since 1970 is out of range ({side}); check the device clock")
    if moment > now + FUTURE_TOLERANCE:
        raise InvalidArgument(
            f"{where}: {instant(moment)} is more than 24 hours in the future (the server's time is "
            f"{instant(now.replace(second=0, microsecond=0))}); check the device clock"
        )
    if moment < EARLIEST_READING:
        raise InvalidArgument(
            f"{where}: {instant(moment)} is before {EARLIEST_READING:%Y-%m-%d}, the earliest time a reading may "
            "have; check the device clock"
        )
    return Reading(metric=metric, minute=seconds // MINUTE, value=float(value))


def validate_batch_size(count: int, limits: BatchLimits) -> None:
    if count == 0:
        raise InvalidArgument("a batch must contain at least one reading")
    if count > limits.max_readings_per_batch:
        raise ResourceExhausted(
            f"a batch holds {count:,} readings; at most {limits.max_readings_per_batch:,}, so split it"
        )


def local_date_of(minute: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(minute * MINUTE, zone).date()


_KINDS = {kind.value: kind for kind in MetricKind}
_LIMITS_BY_VALUE = {kind.value: kind.per_minute for kind in MetricKind}
_EARLIEST_SECONDS = int(EARLIEST_READING.timestamp())
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400


def check_and_place(
    raw: Sequence[tuple[int, int, float]], now: datetime, zone: ZoneInfo, batch: str = ""
) -> tuple[PlacedReading, ...]:
    """Validate a batch's (metric, UTC seconds, value) readings and pin each to its local day.

    A message names the bad reading, in the `batch` (batch_label) when given.

    The same rules as validate_reading, checked with plain comparisons first;
    only a batch that fails them goes through validate_reading, reading by
    reading, to say precisely what is wrong.
    """
    latest = min(int((now + FUTURE_TOLERANCE).timestamp()), LATEST_REPRESENTABLE)
    limits = _LIMITS_BY_VALUE
    for metric, seconds, value in raw:
        bounds = limits.get(metric)
        # NaN fails every comparison, so it takes the slow path too.
        if bounds is None or not bounds[0] <= value <= bounds[1] or not _EARLIEST_SECONDS <= seconds <= latest:
            for position, (m, sec, v) in enumerate(raw):
                validate_reading(m, sec, v, now, position, len(raw), batch)
            raise AssertionError("the fast check and validate_reading disagree")  # pragma: no cover
    first = min(seconds for _, seconds, _ in raw)
    last = max(seconds for _, seconds, _ in raw)
    offset = _utc_offset_seconds(first, zone)
    if last - first > _DAY or offset != _utc_offset_seconds(last, zone):
        # The batch spans a change of UTC offset (or is unusually long): ask the zone for each reading.
        readings = [validate_reading(m, sec, v, now, i, len(raw), batch) for i, (m, sec, v) in enumerate(raw)]
        return place(readings, zone)
    kinds = _KINDS
    days: dict[int, date] = {}
    placed = []
    for metric, seconds, value in raw:
        ordinal = (seconds + offset) // _DAY + _EPOCH_ORDINAL
        day = days.get(ordinal)
        if day is None:
            day = days[ordinal] = date.fromordinal(ordinal)
        placed.append(PlacedReading(kinds[metric], seconds // MINUTE, float(value), day))
    return tuple(placed)


def _utc_offset_seconds(seconds: int, zone: ZoneInfo) -> int:
    return int(datetime.fromtimestamp(seconds, zone).utcoffset().total_seconds())


def place(readings: list[Reading], zone: ZoneInfo) -> tuple[PlacedReading, ...]:
    """Pin each reading to the user's local day, in the time zone in force now.

    Fixing the day at acceptance keeps a reading on the day the user lived it,
    even if they move to another time zone later.
    """
    return tuple(PlacedReading(r.metric, r.minute, r.value, local_date_of(r.minute, zone)) for r in readings)
