"""Week and month reports, and the CSV export."""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from core.domain.aggregation import DaySummary, days_between, summarize_range
from core.domain.calendar import month_of, week_of
from core.domain.errors import InvalidArgument
from core.domain.goals import Goal, GoalPeriod
from core.domain.metrics import MetricKind

MAX_DOWNLOAD_DAYS = 3660


class ReportPeriod(enum.IntEnum):
    WEEK = 1
    MONTH = 2

    @classmethod
    def parse(cls, value: int) -> ReportPeriod:
        try:
            return cls(value)
        except ValueError:
            raise InvalidArgument(f"unknown report period {value}; use WEEK (1) or MONTH (2)") from None


def report_bounds(period: ReportPeriod, anchor: date | None, today: date) -> tuple[date, date]:
    """The period containing `anchor`; by default the last full week or month before today."""
    if period is ReportPeriod.WEEK:
        return week_of(anchor if anchor else week_of(today)[0] - timedelta(days=1))
    return month_of(anchor if anchor else month_of(today)[0] - timedelta(days=1))


def previous_bounds(period: ReportPeriod, start: date) -> tuple[date, date]:
    before = start - timedelta(days=1)
    return week_of(before) if period is ReportPeriod.WEEK else month_of(before)


@dataclass(frozen=True)
class ReportDay:
    day: date
    value: float
    goal_target: float
    goal_met: bool


@dataclass(frozen=True)
class MetricReport:
    metric: MetricKind
    days: tuple[ReportDay, ...]
    total: float
    average: float
    best_day: date | None
    best_value: float
    days_goal_met: int
    current_streak: int
    daily_goal_target: float
    weekly_goal_target: float
    previous_total: float
    change_percent: float | None


@dataclass(frozen=True)
class Report:
    period: ReportPeriod
    start: date
    end: date
    metrics: tuple[MetricReport, ...]


def metric_report(
    metric: MetricKind,
    bounds: tuple[date, date],
    previous_bounds: tuple[date, date],
    stored: Sequence[DaySummary],
    previous: Sequence[DaySummary],
    goals: Sequence[Goal],
) -> MetricReport:
    """One metric's section. Goals are the user's active ones for this metric.

    The change against the previous period compares totals (for heart rate,
    average bpm) and is unset when the previous period has no data.
    """
    summary = summarize_range(metric, *bounds, stored)
    daily_goal = next((g.target for g in goals if g.period is GoalPeriod.DAILY), 0.0)
    weekly_goal = next((g.target for g in goals if g.period is GoalPeriod.WEEKLY), 0.0)
    days = tuple(
        ReportDay(d.day, d.value, daily_goal, bool(daily_goal) and d.value >= daily_goal) for d in summary.days
    )
    streak = 0
    for day in reversed(days):
        if not day.goal_met:
            break
        streak += 1
    with_data = [d for d in summary.days if d.has_data]
    best = max(with_data, key=lambda d: d.value, default=None)
    previous_summary = summarize_range(metric, *previous_bounds, previous)
    previous_figure = previous_summary.total if metric.is_cumulative else previous_summary.average
    this_figure = summary.total if metric.is_cumulative else summary.average
    change = (this_figure - previous_figure) / previous_figure * 100 if previous_figure else None
    return MetricReport(
        metric=metric,
        days=days,
        total=summary.total,
        average=summary.average,
        best_day=best.day if best else None,
        best_value=best.value if best else 0.0,
        days_goal_met=sum(d.goal_met for d in days),
        current_streak=streak,
        daily_goal_target=daily_goal,
        weekly_goal_target=weekly_goal,
        previous_total=previous_summary.total,
        change_percent=change,
    )


CSV_COLUMNS = (
    ("steps", MetricKind.STEPS, "value"),
    ("calories_kcal", MetricKind.CALORIES_BURNED, "value"),
    ("distance_m", MetricKind.DISTANCE, "value"),
    ("active_minutes", MetricKind.ACTIVE_MINUTES, "value"),
    ("heart_rate_avg_bpm", MetricKind.HEART_RATE, "value"),
    ("heart_rate_min_bpm", MetricKind.HEART_RATE, "min"),
    ("heart_rate_max_bpm", MetricKind.HEART_RATE, "max"),
)


def render_csv(start: date, end: date, stored: Mapping[MetricKind, Sequence[DaySummary]]) -> bytes:
    """One row per local day, one column per figure; empty cells where a day has no data."""
    by_metric = {metric: {d.day: d for d in days} for metric, days in stored.items()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", *(name for name, _, _ in CSV_COLUMNS)])
    for day in days_between(start, end):
        row = [day.isoformat()]
        for _, metric, attribute in CSV_COLUMNS:
            summary = by_metric.get(metric, {}).get(day)
            row.append(_cell(getattr(summary, attribute)) if summary and summary.has_data else "")
        writer.writerow(row)
    return out.getvalue().encode()


def _cell(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
