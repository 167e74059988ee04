"""Week and month reports, and the downloads: CSV, and the figures of the PDF."""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from fittrack.core.domain.aggregation import DaySummary, RangeSummary, days_between, summarize_range
from fittrack.core.domain.calendar import month_of, week_of
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind

MAX_DOWNLOAD_DAYS = 3660
# Up to about three months a chart has a bar per day; longer ranges get a bar per week.
DAILY_BARS_UP_TO_DAYS = 92


class ReportFormat(enum.IntEnum):
    CSV = 1
    PDF = 2

    @classmethod
    def parse(cls, value: int) -> ReportFormat:
        try:
            return cls(value)
        except ValueError:
            names = " or ".join(f"{f.name} ({f.value})" for f in cls)
            raise InvalidArgument(f"unknown report format {value}; use {names}") from None


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
    # A day without readings reads 0; this tells it from a day whose readings add up to 0.
    has_data: bool = True


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
    # The days days_goal_met is out of: the period's days up to today (all of them once it has ended).
    days_so_far: int = 0

    @property
    def in_progress(self) -> bool:
        """Whether some days of the period are still to come, so its counts are "so far"."""
        return self.days_so_far < len(self.days)


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
    today: date,
) -> MetricReport:
    """One metric's section. Goals are the user's active ones for this metric; today is the user's local day.

    A day after today never counts as met, nor towards days_so_far. The streak counts back
    from the last day that has ended, or from today once today has met the goal: today,
    still in progress, neither ends nor breaks a streak before it is met.
    The change against the previous period compares totals (for heart rate,
    average bpm) and is unset when the previous period has no data.
    Heart rate has no best day: the highest average bpm is not an achievement.
    """
    summary = summarize_range(metric, *bounds, stored)
    daily_goal = next((g.target for g in goals if g.period is GoalPeriod.DAILY), 0.0)
    weekly_goal = next((g.target for g in goals if g.period is GoalPeriod.WEEKLY), 0.0)
    days = tuple(
        ReportDay(d.day, d.value, daily_goal, bool(daily_goal) and d.day <= today and d.value >= daily_goal, d.has_data)
        for d in summary.days
    )
    with_data = [d for d in summary.days if d.has_data]
    best = max(with_data, key=lambda d: d.value, default=None) if metric.is_cumulative else None
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
        current_streak=streak(days, today),
        daily_goal_target=daily_goal,
        weekly_goal_target=weekly_goal,
        previous_total=previous_summary.total,
        change_percent=change,
        days_so_far=sum(d.day <= today for d in days),
    )


def streak(days: Sequence[ReportDay], today: date) -> int:
    """Days in a row that met the goal, back from the period's last day that has ended or has met it."""
    count = 0
    for day in reversed(days):
        if day.day > today or (day.day == today and not day.goal_met):
            continue  # not over yet: it can still be met
        if not day.goal_met:
            break
        count += 1
    return count


# Columns are named as the CLI and the upload files name the metrics (MetricKind.key: one vocabulary); the
# values are in the stored units: steps, kcal, metres, minutes; an averaged kind (heart rate, in bpm) has the
# day's average, then its lowest and highest minute.
_SUMMED_FIGURES = (("", "value"),)
_AVERAGED_FIGURES = (("", "value"), ("_min", "min"), ("_max", "max"))
CSV_COLUMNS = tuple(
    (f"{metric.key}{suffix}", metric, figure)
    for metric in MetricKind
    for suffix, figure in (_SUMMED_FIGURES if metric.is_cumulative else _AVERAGED_FIGURES)
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


# --- the PDF's figures: what the renderer draws, computed here so it stays testable without it ---

# A chart spans the days with data; a span shorter than this is widened inside the range, so a day
# or two of data is not drawn as a bar as wide as the page.
MIN_CHART_DAYS = 7


@dataclass(frozen=True)
class RangeFigures:
    """One metric over a download's range: a row of the PDF's summary table."""

    metric: MetricKind
    total: float  # 0 for heart rate
    average: float  # per day with data (heart rate: bpm weighted by minutes)
    best_day: date | None  # None without data, and for heart rate (its highest average is no achievement)
    best_value: float
    days_with_data: int
    days_goal_met: int  # out of days_with_data: a day without readings cannot be judged
    daily_goal_target: float  # 0 without a daily goal
    low: float = 0.0  # heart rate: the lowest minute of the range (0 for other metrics)
    high: float = 0.0  # heart rate: the highest minute


@dataclass(frozen=True)
class ChartBar:
    start: date  # first day of the bar inside the range
    days: int  # days of the range the bar covers: 1 for a day, up to 7 for a week cut by the range
    value: float  # the sum of those days (heart rate: their mean bpm); 0 when none has data
    whole: bool  # False for a week the range cuts, so its bar is not read against the weekly goal
    goal_met: bool = False  # a whole bar that reached the chart's goal
    low: float = 0.0  # heart rate: the lowest minute of those days (0 for other metrics)
    high: float = 0.0  # heart rate: the highest minute


@dataclass(frozen=True)
class Chart:
    metric: MetricKind
    bar_days: int  # 1 (a bar per day) or 7 (a bar per Monday-to-Sunday week)
    bars: tuple[ChartBar, ...]
    goal: float  # the goal each bar is judged against, drawn as a horizontal line; 0 for none
    goal_label: str  # what the line is: "daily goal", "weekly goal" or "daily goal × 7"
    # With a bar per day, a weekly goal no single bar is judged against: drawn as its per-day share.
    weekly_goal: float = 0.0

    @property
    def daily_share(self) -> float:
        """The weekly goal's share of one day, a pace to read the daily bars against; 0 without."""
        return self.weekly_goal / 7 if self.bar_days == 1 else 0.0

    @property
    def has_data(self) -> bool:
        return any(bar.value > 0 for bar in self.bars)


@dataclass(frozen=True)
class RangeReport:
    """Everything the PDF shows."""

    username: str
    start: date
    end: date
    figures: tuple[RangeFigures, ...]  # one per metric kind, in MetricKind order, over start..end
    charts: tuple[Chart, ...]  # one per metric kind, in MetricKind order, over chart_start..chart_end
    display_name: str = ""
    # The days the charts span: from the first to the last day with data (see chart_span).
    chart_start: date | None = None
    chart_end: date | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def name(self) -> str:
        """Who the report is about, as the person chose to be called."""
        return self.display_name or self.username

    @property
    def chart_days(self) -> int:
        return (self.chart_end - self.chart_start).days + 1 if self.chart_start and self.chart_end else self.days


def range_report(
    username: str,
    start: date,
    end: date,
    stored: Mapping[MetricKind, Sequence[DaySummary]],
    goals: Sequence[Goal],
    display_name: str = "",
) -> RangeReport:
    """The PDF's figures. Goals are the user's active ones; their current targets apply to every day.

    The summary covers the whole range; the charts only the span with data, so ten years
    asked for over a fortnight of data chart that fortnight rather than a sliver of it.
    """
    summaries = {metric: summarize_range(metric, start, end, stored.get(metric, ())) for metric in MetricKind}
    chart_start, chart_end = chart_span(start, end, summaries.values())
    figures = []
    charts = []
    for metric, summary in summaries.items():
        daily_goal = _target(goals, metric, GoalPeriod.DAILY)
        with_data = [d for d in summary.days if d.has_data]
        best = max(with_data, key=lambda d: d.value, default=None) if metric.is_cumulative else None
        figures.append(
            RangeFigures(
                metric=metric,
                total=summary.total,
                average=summary.average,
                best_day=best.day if best else None,
                best_value=best.value if best else 0.0,
                days_with_data=summary.days_with_data,
                days_goal_met=sum(bool(daily_goal) and d.value >= daily_goal for d in with_data),
                daily_goal_target=daily_goal,
                low=0.0 if metric.is_cumulative else summary.min,
                high=0.0 if metric.is_cumulative else summary.max,
            )
        )
        charted = [d for d in summary.days if chart_start <= d.day <= chart_end]
        charts.append(_chart(metric, charted, daily_goal, _target(goals, metric, GoalPeriod.WEEKLY)))
    return RangeReport(
        username, start, end, tuple(figures), tuple(charts), display_name.strip(), chart_start, chart_end
    )


def chart_span(start: date, end: date, summaries: Iterable[RangeSummary]) -> tuple[date, date]:
    """The first to the last day with data of any metric, inside start..end; the whole range without data.

    A span long enough for weekly bars is widened to whole weeks (inside the range), so its
    first and last bars are read against the weekly goal like the others; a span shorter
    than MIN_CHART_DAYS is widened to that many days (inside the range).
    """
    data_days = [d.day for summary in summaries for d in summary.days if d.has_data]
    if not data_days:
        return start, end
    first, last = min(data_days), max(data_days)
    if (last - first).days + 1 > DAILY_BARS_UP_TO_DAYS:
        return max(start, week_of(first)[0]), min(end, week_of(last)[1])
    if (last - first).days + 1 < MIN_CHART_DAYS:
        last = min(end, first + timedelta(days=MIN_CHART_DAYS - 1))
        first = max(start, last - timedelta(days=MIN_CHART_DAYS - 1))
    return first, last


def _target(goals: Sequence[Goal], metric: MetricKind, period: GoalPeriod) -> float:
    return next((g.target for g in goals if g.metric is metric and g.period is period and g.active), 0.0)


def _chart(metric: MetricKind, days: Sequence[DaySummary], daily_goal: float, weekly_goal: float) -> Chart:
    """Bars of `days` (the chart's span): a bar a day up to DAILY_BARS_UP_TO_DAYS, else a bar a week."""
    if len(days) <= DAILY_BARS_UP_TO_DAYS:
        bars = tuple(_bar(metric, [d], True, daily_goal) for d in days)
        return Chart(metric, 1, bars, daily_goal, "daily goal" if daily_goal else "", weekly_goal)
    if weekly_goal:
        goal, label = weekly_goal, "weekly goal"
    elif daily_goal:
        goal, label = daily_goal * 7, "daily goal × 7"
    else:
        goal, label = 0.0, ""
    weeks: dict[date, list[DaySummary]] = {}
    for day in days:
        weeks.setdefault(week_of(day.day)[0], []).append(day)
    bars = tuple(_bar(metric, members, len(members) == 7, goal) for members in weeks.values())
    return Chart(metric, 7, bars, goal, label)


def _bar(metric: MetricKind, days: Sequence[DaySummary], whole: bool, goal: float) -> ChartBar:
    with_data = [d for d in days if d.has_data]
    if not with_data:
        return ChartBar(days[0].day, len(days), 0.0, whole)
    if metric.is_cumulative:
        value = sum(d.value for d in with_data)
        return ChartBar(days[0].day, len(days), value, whole, bool(goal) and whole and value >= goal)
    # Heart rate: the mean of every minute measured, and the extremes of those minutes.
    mean = sum(d.value * d.minutes for d in with_data) / sum(d.minutes for d in with_data)
    low, high = min(d.min for d in with_data), max(d.max for d in with_data)
    return ChartBar(days[0].day, len(days), mean, whole, False, low, high)
