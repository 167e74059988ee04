"""From per-source minute values to daily figures, and from days to ranges.

Merge policy (one user wearing a watch and carrying a phone must not walk
twice as far): for each minute, cumulative metrics take the highest value any
source reported for that minute, heart rate takes the mean of the sources.
A day's value is then the sum of its merged minutes (heart rate: their mean).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from fittrack.core.domain.metrics import MetricKind

MinuteValues = Mapping[int, float]  # minute since the epoch -> value


@dataclass(frozen=True, slots=True)
class SourceFigures:
    """What one source reported on its own, before the merge."""

    source: str
    value: float  # total, or mean bpm for heart rate
    minutes: int


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One metric on one local day."""

    day: date
    value: float  # total, or mean bpm for heart rate
    min: float = 0.0
    max: float = 0.0
    minutes: int = 0
    sources: tuple[SourceFigures, ...] = ()  # ordered by source

    @property
    def has_data(self) -> bool:
        return self.minutes > 0


@dataclass(frozen=True, slots=True)
class RangeSummary:
    metric: MetricKind
    days: tuple[DaySummary, ...]
    total: float
    average: float
    min: float
    max: float
    days_with_data: int
    sources: tuple[SourceFigures, ...] = ()


def merge_sources(metric: MetricKind, by_source: Mapping[str, MinuteValues]) -> dict[int, float]:
    """Apply the merge policy: one value per minute across all sources."""
    if len(by_source) == 1:
        return dict(next(iter(by_source.values())))
    merged: dict[int, float] = {}
    if metric.is_cumulative:
        for minutes in by_source.values():
            for minute, value in minutes.items():
                if value > merged.get(minute, -1.0):
                    merged[minute] = value
        return merged
    sums: dict[int, list[float]] = {}
    for minutes in by_source.values():
        for minute, value in minutes.items():
            sums.setdefault(minute, []).append(value)
    return {minute: sum(values) / len(values) for minute, values in sums.items()}


def summarize_day(metric: MetricKind, day: date, merged: MinuteValues) -> DaySummary:
    if not merged:
        return DaySummary(day, 0.0)
    values = merged.values()
    total = sum(values)
    value = total if metric.is_cumulative else total / len(merged)
    return DaySummary(day, value, min(values), max(values), len(merged))


def summarize_sources(metric: MetricKind, day: date, by_source: Mapping[str, MinuteValues]) -> DaySummary:
    """The day's merged figures, with each source's own figures beside them."""
    merged = summarize_day(metric, day, merge_sources(metric, by_source))
    sources = []
    for source in sorted(by_source):
        own = summarize_day(metric, day, by_source[source])
        if own.has_data:
            sources.append(SourceFigures(source, own.value, own.minutes))
    return DaySummary(merged.day, merged.value, merged.min, merged.max, merged.minutes, tuple(sources))


def combine_sources(metric: MetricKind, days: Iterable[DaySummary]) -> tuple[SourceFigures, ...]:
    """Each source's figures over several days: totals summed, heart rate averaged over its minutes."""
    value: dict[str, float] = {}
    minutes: dict[str, int] = {}
    for day in days:
        for figures in day.sources:
            weight = 1 if metric.is_cumulative else figures.minutes
            value[figures.source] = value.get(figures.source, 0.0) + figures.value * weight
            minutes[figures.source] = minutes.get(figures.source, 0) + figures.minutes
    return tuple(
        SourceFigures(
            source,
            value[source] if metric.is_cumulative else value[source] / minutes[source],
            minutes[source],
        )
        for source in sorted(value)
        if minutes[source]
    )


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def summarize_range(metric: MetricKind, start: date, end: date, stored: Iterable[DaySummary]) -> RangeSummary:
    """Fill the days without data and compute the range's figures.

    The average is over days with data, so a day the device stayed in a drawer
    does not drag it down. For heart rate it is weighted by minutes, so it is
    the mean of every minute measured.
    """
    by_day = {summary.day: summary for summary in stored}
    days = tuple(by_day.get(day, DaySummary(day, 0.0)) for day in days_between(start, end))
    with_data = [d for d in days if d.has_data]
    if not with_data:
        return RangeSummary(metric, days, 0.0, 0.0, 0.0, 0.0, 0)
    if metric.is_cumulative:
        total = sum(d.value for d in with_data)
        average = total / len(with_data)
    else:
        total = 0.0
        minutes = sum(d.minutes for d in with_data)
        average = sum(d.value * d.minutes for d in with_data) / minutes
    return RangeSummary(
        metric,
        days,
        total,
        average,
        min(d.min for d in with_data),
        max(d.max for d in with_data),
        len(with_data),
        combine_sources(metric, with_data),
    )
