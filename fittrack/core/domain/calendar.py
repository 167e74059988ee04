"""Local days, weeks, months and the ranges users ask for."""

from __future__ import annotations

import enum
import functools
from calendar import monthrange
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from fittrack.core.domain.errors import InvalidArgument

MAX_VIEW_DAYS = 31


class RangePreset(enum.IntEnum):
    TODAY = 1
    LAST_7_DAYS = 2
    LAST_30_DAYS = 3


_PRESET_DAYS = {RangePreset.TODAY: 1, RangePreset.LAST_7_DAYS: 7, RangePreset.LAST_30_DAYS: 30}


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or INVALID_ARGUMENT saying what a valid name looks like.

    Only names in the zone database count: ZoneInfo() alone would also try
    directories ("Europe") and paths, and fail in ways that are not the client's fault.
    """
    if name not in _known_zones():
        raise InvalidArgument(f"time zone {name[:64]!r} is not an IANA time zone name such as 'Europe/Paris'")
    return ZoneInfo(name)


def local_today(zone: ZoneInfo, now: datetime) -> date:
    return now.astimezone(zone).date()


# Wide enough for any birth date and any reading, narrow enough that week and
# month arithmetic never leaves what `date` can hold.
EARLIEST_YEAR, LATEST_YEAR = 1850, 2200


def make_date(year: int, month: int, day: int, what: str) -> date:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise InvalidArgument(f"{what} has year {year}; use a year from {EARLIEST_YEAR} to {LATEST_YEAR}")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidArgument(f"{what} {year:04d}-{month:02d}-{day:02d} is not a calendar date") from None


def resolve_view_range(preset: int | None, explicit: tuple[date, date] | None, today: date) -> tuple[date, date]:
    """The inclusive days a metric view covers."""
    if explicit is not None:
        start, end = explicit
        check_range(start, end, MAX_VIEW_DAYS)
        return start, end
    if preset is None:
        raise InvalidArgument("choose a range: a preset (today, last 7 days, last 30 days) or explicit dates")
    try:
        days = _PRESET_DAYS[RangePreset(preset)]
    except ValueError:
        raise InvalidArgument(f"unknown range preset {preset}; use TODAY, LAST_7_DAYS or LAST_30_DAYS") from None
    return today - timedelta(days=days - 1), today


def check_range(start: date, end: date, max_days: int) -> None:
    if end < start:
        raise InvalidArgument(f"the range ends ({end}) before it starts ({start})")
    length = (end - start).days + 1
    if length > max_days:
        raise InvalidArgument(f"the range covers {length} days; at most {max_days} are allowed, so narrow it")


def week_of(day: date) -> tuple[date, date]:
    """Monday to Sunday around `day`."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def month_of(day: date) -> tuple[date, date]:
    return day.replace(day=1), day.replace(day=monthrange(day.year, day.month)[1])


def elapsed_fraction(start: date, end: date, zone: ZoneInfo, now: datetime) -> float:
    """How much of the local days start..end has passed at `now`, from 0 to 1."""
    # In UTC: subtracting two times of the same ZoneInfo counts wall-clock
    # hours, which makes the days the clocks change 24 hours long.
    begin = datetime.combine(start, datetime.min.time(), zone).astimezone(UTC)
    finish = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    if now <= begin:
        return 0.0
    if now >= finish:
        return 1.0
    return (now - begin) / (finish - begin)
