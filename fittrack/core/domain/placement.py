"""Which local day each minute of a write is counted on: the day it was first placed on.

A reading comes with the user's local day in the time zone in force when it
was accepted (metrics.place). A minute already stored, by any source, keeps the
day it was stored on: after a move to another time zone, a resend of it, or
another device's copy of it, would otherwise land on a second day and count
twice. The per-minute merge of the day (aggregation.merge_sources) then counts
it once.

The stores look for a minute only where it can be: on the days it falls on in
some time zone (two, or three for minutes between 10:00 and 12:00 UTC), and,
when it comes with a day no time zone gives it (placed by hand, as in tests),
on the days next to that one. A store reads every source's minutes
of the days days_to_look_up() names, as plain sets, and hands them to
place_minutes().
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date

from fittrack.core.domain.metrics import MetricKind, PlacedReading

# Every minute a source holds of a metric on a local day, whatever the source.
HeldMinutes = Mapping[tuple[MetricKind, date], Set[int]]
# What a write stores: each source's new values of a metric on a local day.
Placed = dict[tuple[MetricKind, date], dict[int, float]]

# Every civil time zone lies between UTC-12:00 and UTC+14:00.
_WESTMOST_MINUTES, _EASTMOST_MINUTES = -12 * 60, 14 * 60
_MINUTES_PER_DAY = 24 * 60
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def possible_local_days(first_minute: int, last_minute: int) -> range:
    """Ordinals of the local days, in any time zone, that minutes first..last can fall on."""
    first = (first_minute + _WESTMOST_MINUTES) // _MINUTES_PER_DAY + _EPOCH_ORDINAL
    last = (last_minute + _EASTMOST_MINUTES) // _MINUTES_PER_DAY + _EPOCH_ORDINAL
    return range(first, last + 1)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What place_minutes() needs of one metric: every source's minutes of these days.

    Only minutes first..last matter: a store may leave out a source's minutes
    of a day when none of them lies in that span.
    """

    days: frozenset[date]
    first: int
    last: int


def days_to_look_up(readings: Sequence[PlacedReading]) -> dict[MetricKind, Lookup]:
    """For each metric of the readings, the days a minute of theirs can be on already."""
    days: dict[int, set[int]] = {}
    spans: dict[int, tuple[int, int]] = {}
    for (metric, day), values in _first_day_last_value(readings).items():
        low, high = min(values), max(values)
        days.setdefault(metric, set()).update(_reach(day, low, high))
        first, last = spans.get(metric, (low, high))
        spans[metric] = (min(first, low), max(last, high))
    return {
        MetricKind(metric): Lookup(frozenset(map(date.fromordinal, wanted)), *spans[metric])
        for metric, wanted in days.items()
    }


def place_minutes(readings: Sequence[PlacedReading], held: HeldMinutes) -> Placed:
    """The readings as (metric, day) -> {minute: value}, each minute on the day it belongs to.

    As if stored one at a time: a minute repeated in the write keeps the day
    it came with first, and its last value. A minute `held` (by any source) on
    a day it can be on stays there; if a past double write left it on two, the
    earlier day wins. Days missing from `held` hold nothing; days
    days_to_look_up() did not name are not looked at.
    """
    placed: dict[tuple[int, int], dict[int, float]] = {}
    for (metric, day), values in _first_day_last_value(readings).items():
        low, high = min(values), max(values)
        found: dict[int, int] = {}
        for other in sorted(_reach(day, low, high) - {day}):
            there = held.get((metric, date.fromordinal(other)))
            if there:
                for minute in _common(values, there, low, high):
                    if minute not in found and _can_be_on(other, minute, day):
                        found[minute] = other
        here = held.get((metric, date.fromordinal(day)), ()) if found else ()
        for minute, other in found.items():
            if other < day or minute not in here:
                placed.setdefault((metric, other), {})[minute] = values.pop(minute)
        if values:
            placed.setdefault((metric, day), {}).update(values)
    return {(MetricKind(metric), date.fromordinal(day)): values for (metric, day), values in placed.items()}


def _first_day_last_value(readings: Sequence[PlacedReading]) -> dict[tuple[int, int], dict[int, float]]:
    """The readings as (metric, day ordinal) -> {minute: value}: a repeated minute keeps its first day, last value."""
    by_day: dict[tuple[int, date], dict[int, float]] = {}
    for reading in readings:
        key = (reading.metric, reading.local_date)
        values = by_day.get(key)
        if values is None:
            values = by_day[key] = {}
        values[reading.minute] = reading.value
    fresh = {(int(metric), day.toordinal()): values for (metric, day), values in by_day.items()}
    days_of = Counter(metric for metric, _ in fresh)
    for metric in [metric for metric, days in days_of.items() if days > 1]:
        # One metric on several days (a write across midnight, or a time-zone change): only a
        # minute on two of them needs the slow pass, reading by reading.
        groups = [values for (kind, _), values in fresh.items() if kind == metric]
        if sum(map(len, groups)) == len(set().union(*groups)):
            continue
        for key in [key for key in fresh if key[0] == metric]:
            del fresh[key]
        first_day: dict[int, int] = {}
        for reading in readings:
            if reading.metric == metric:
                day = first_day.setdefault(reading.minute, reading.local_date.toordinal())
                fresh.setdefault((metric, day), {})[reading.minute] = reading.value
    return fresh


def _reach(day: int, low: int, high: int) -> set[int]:
    """The days (ordinals) where minutes low..high, which come with `day`, can be already."""
    days = {*possible_local_days(low, high), day}
    if not _real(day, low) or not _real(day, high):
        days |= {day - 1, day + 1}
    return days


def _can_be_on(other: int, minute: int, day: int) -> bool:
    """Whether `minute`, which comes with `day`, can be on `other` already: as _reach, for one minute."""
    return other in possible_local_days(minute, minute) or (abs(other - day) == 1 and not _real(day, minute))


def _real(day: int, minute: int) -> bool:
    """Whether `day` is the minute's local day in some time zone, rather than placed by hand."""
    return day in possible_local_days(minute, minute)


def _common(values: dict[int, float], held: Set[int], low: int, high: int) -> Iterable[int]:
    if len(held) < len(values):
        return [minute for minute in held if low <= minute <= high and minute in values]
    return [minute for minute in values if minute in held]
