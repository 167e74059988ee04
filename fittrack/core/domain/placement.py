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
on the days next to that one. A store reads every source's minutes of the
days Write.of(readings).lookups names and hands them to place_minutes() as
plain collections of minutes, whatever its layout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from fittrack.core.domain.metrics import MetricKind, PlacedReading

# Every minute any source holds of a metric on a local day (a minute held by two may come twice).
HeldMinutes = Mapping[tuple[MetricKind, date], Collection[int]]
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


class _Group(NamedTuple):
    """A write's minutes of one metric that came with one day."""

    metric: int
    day: int  # ordinal
    values: dict[int, float]
    others: list[int]  # the other days (ordinals) where they can be already, in order
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Write:
    """A write's readings as the rule sees them, and what a store reads to place them (`lookups`).

    As if the readings were stored one at a time, a minute repeated in the
    write keeps the day it came with first, and its last value.
    """

    groups: tuple[_Group, ...]
    lookups: dict[MetricKind, Lookup]

    @classmethod
    def of(cls, readings: Sequence[PlacedReading]) -> Write:
        groups = []
        days: dict[int, set[int]] = {}
        spans: dict[int, tuple[int, int]] = {}
        for (metric, day), values in _first_day_last_value(readings).items():
            low, high = min(values), max(values)
            reach = _reach(day, low, high)
            groups.append(_Group(metric, day, values, sorted(reach - {day}), low, high))
            days.setdefault(metric, set()).update(reach)
            first, last = spans.get(metric, (low, high))
            spans[metric] = (min(first, low), max(last, high))
        lookups = {
            MetricKind(metric): Lookup(frozenset(map(date.fromordinal, wanted)), *spans[metric])
            for metric, wanted in days.items()
        }
        return cls(tuple(groups), lookups)


def place_minutes(write: Write, held: HeldMinutes) -> Placed:
    """The write's minutes as (metric, day) -> {minute: value}, each minute on the day it belongs to.

    A minute `held` (by any source) on a day it can be on stays there; if a
    past double write left it on two, the earlier day wins. `held` needs the
    days of write.lookups only: days missing hold nothing, others are not looked at.
    """
    placed: dict[tuple[int, int], dict[int, float]] = {}
    for metric, day, values, others, low, high in write.groups:
        found: dict[int, int] = {}
        for other in others:
            there = held.get((metric, date.fromordinal(other)))
            if not there:
                continue
            common = values.keys() & there
            if not (_real(other, low) and _real(other, high)):
                # Not every minute of the group falls on that day in some time zone (see _reach).
                common = [minute for minute in common if _can_be_on(other, minute, day)]
            for minute in common:
                found.setdefault(minute, other)
        if found:
            values = dict(values)
            here = None
            for minute, other in found.items():
                if other > day:
                    # Left on this day too by a past double write? Then this one is the earlier.
                    here = set(held.get((metric, date.fromordinal(day)), ())) if here is None else here
                    if minute in here:
                        continue
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
    # The days a minute falls on move on with it: if `day` is one of them for low and high, it is for all between.
    if not _real(day, low) or not _real(day, high):
        days |= {day - 1, day + 1}
    return days


def _can_be_on(other: int, minute: int, day: int) -> bool:
    """Whether `minute`, which comes with `day`, can be on `other` already: as _reach, for one minute."""
    return _real(other, minute) or (abs(other - day) == 1 and not _real(day, minute))


def _real(day: int, minute: int) -> bool:
    """Whether `day` is the minute's local day in some time zone, rather than placed by hand (possible_local_days)."""
    return (
        (minute + _WESTMOST_MINUTES) // _MINUTES_PER_DAY
        <= day - _EPOCH_ORDINAL
        <= (minute + _EASTMOST_MINUTES) // _MINUTES_PER_DAY
    )
