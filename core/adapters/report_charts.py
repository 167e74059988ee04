"""The PDF report's charts: one matplotlib Axes per metric, drawn with the object API only.

Every day is placed at its date's midnight (matplotlib's date number) and its bar is
centred there, so a tick on a date sits under that day's bar. Ticks and their labels
are chosen here from matplotlib's date locators and set explicitly, which keeps them
inside the charted span (a locator also returns dates beyond it, and a formatter that
reads those names the wrong month) and makes them readable without drawing the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from core.domain.metrics import MetricKind
from core.domain.reports import DAILY_BARS_UP_TO_DAYS, Chart, ChartBar

BAR_COLOR = "#4a7fc1"
MET_COLOR = "#2b8a3e"  # a day (or week) that reached the goal
PARTIAL_COLOR = "#bfd1ea"  # weeks the range cuts: not comparable with the weekly goal
GOAL_COLOR = "#d9480f"
HEART_COLOR = "#c92a2a"
HEART_RANGE_COLOR = "#f4b4b4"
GRID_COLOR = "#e2e2e2"
TICK_FONT = 7.5
TITLES = {
    MetricKind.STEPS: "Steps",
    MetricKind.CALORIES_BURNED: "Calories burned",
    MetricKind.DISTANCE: "Distance",
    MetricKind.ACTIVE_MINUTES: "Active minutes",
    MetricKind.HEART_RATE: "Heart rate",
}
# Space one x tick label needs, in inches ("28 Nov" at TICK_FONT, with a gap).
TICK_LABEL_INCHES = 0.45


def display_unit(metric: MetricKind) -> str:
    """Distance is stored in metres and shown in kilometres; the rest as stored."""
    return "km" if metric is MetricKind.DISTANCE else metric.unit


def display_scale(metric: MetricKind) -> float:
    return 0.001 if metric is MetricKind.DISTANCE else 1.0


def chart_title(metric: MetricKind) -> str:
    unit = display_unit(metric)
    return TITLES[metric] if unit in TITLES[metric].lower() else f"{TITLES[metric]} ({unit})"


def draw_chart(axes, chart: Chart, span: tuple[date, date]) -> None:
    """One metric's chart over span (first and last day) on axes, its legend above the axes."""
    from matplotlib import dates

    axes.set_gid(chart.metric.name.lower())  # so tests and tools can find a metric's chart
    axes.set_title(chart_title(chart.metric), loc="left", fontsize=10, pad=5)
    axes.set_xlim(dates.date2num(_midnight(span[0])) - 0.5, dates.date2num(_midnight(span[1])) + 0.5)
    _date_ticks(axes, span)
    axes.tick_params(labelsize=TICK_FONT, length=3, color="#888888")
    axes.spines[["top", "right"]].set_visible(False)
    axes.spines[["left", "bottom"]].set_color("#888888")
    if not chart.has_data:
        # No bars: an empty axis of made-up numbers would read as zeros, so say it instead.
        axes.set_ylim(0, 1)
        axes.set_yticks([])
        axes.text(0.5, 0.5, "No data", transform=axes.transAxes, ha="center", va="center", color="#777777")
        return
    scale = display_scale(chart.metric)
    shown = [bar for bar in chart.bars if bar.value > 0]  # a day or week without data is a gap
    handles = []
    if chart.metric is MetricKind.HEART_RATE:
        _heart_rate(axes, chart, shown)
        low = min(bar.low for bar in shown)
        bottom, top = max(0.0, low - 5), max(bar.high for bar in shown) + 5
    else:
        handles = _bars(axes, chart, shown, scale)
        bottom, top = 0.0, max([chart.goal, *(bar.value for bar in shown)]) * scale * 1.08
    _value_ticks(axes, bottom, top, integer=chart.metric is not MetricKind.DISTANCE)
    axes.grid(axis="y", color=GRID_COLOR, linewidth=0.6)
    axes.set_axisbelow(True)
    if handles:
        # The goal line's legend goes above the plot, right-aligned on the title's line, where it
        # never covers a bar or the line; what the colours mean is the page's key (chart_key).
        axes.legend(
            handles=handles,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7.5,
            frameon=False,
            borderaxespad=0.2,
            handlelength=2.0,
        )


def chart_key(charts: Sequence[Chart]) -> list:
    """What the colours and marks of the charts mean, once for the page: only what some chart shows."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = [chart for chart in charts if chart.has_data]
    bars = [bar for chart in drawn if chart.metric is not MetricKind.HEART_RATE for bar in chart.bars]
    handles = []
    if any(chart.goal for chart in drawn):
        handles.append(Patch(color=MET_COLOR, label="goal met"))
        handles.append(Patch(color=BAR_COLOR, label="below the goal"))
    if any(not bar.whole for bar in bars):
        handles.append(Patch(color=PARTIAL_COLOR, label="week partly outside the range"))
    heart = [chart for chart in drawn if chart.metric is MetricKind.HEART_RATE]
    if heart:
        per = "daily" if heart[0].bar_days == 1 else "weekly"
        handles.append(
            Line2D([], [], marker="o", linestyle="", color=HEART_COLOR, markersize=4, label=f"{per} average bpm")
        )
        handles.append(Patch(color=HEART_RANGE_COLOR, label="lowest to highest minute"))
    return handles


def _bars(axes, chart: Chart, shown: list[ChartBar], scale: float) -> list:
    from matplotlib.collections import PolyCollection

    # All bars as one collection of rectangles rather than a patch each (axes.bar): ten years
    # of weekly bars draw in a fraction of the time.
    gap = 0.15 if chart.bar_days == 1 else 1.0  # in days, between neighbouring bars
    rectangles = [_rectangle(bar, gap, 0.0, bar.value * scale) for bar in shown]
    colors = [MET_COLOR if bar.goal_met else BAR_COLOR if bar.whole else PARTIAL_COLOR for bar in shown]
    axes.add_collection(PolyCollection(rectangles, facecolors=colors, linewidths=0, gid="bars"), autolim=False)
    if not chart.goal:
        return []
    label = f"{chart.goal_label}: {_goal_text(chart.goal * scale)}"
    return [axes.axhline(chart.goal * scale, color=GOAL_COLOR, linestyle="--", linewidth=1.1, gid="goal", label=label)]


def _heart_rate(axes, chart: Chart, shown: list[ChartBar]) -> None:
    from matplotlib import dates
    from matplotlib.collections import PolyCollection

    gap = 0.5 if chart.bar_days == 1 else 2.5  # narrower than bars: a range, not an amount
    ranges = [_rectangle(bar, gap, bar.low, bar.high) for bar in shown if bar.high > bar.low]
    axes.add_collection(PolyCollection(ranges, facecolors=HEART_RANGE_COLOR, linewidths=0, gid="range"), autolim=False)
    centres = [dates.date2num(_midnight(bar.start)) + (bar.days - 1) / 2 for bar in shown]
    size = 3 if len(chart.bars) <= 100 else 1.5  # hundreds of weeks: small dots, or they merge into a band
    axes.plot(centres, [bar.value for bar in shown], "o", color=HEART_COLOR, markersize=size, gid="average")


def _rectangle(bar: ChartBar, gap: float, bottom: float, top: float):
    from matplotlib import dates

    left = dates.date2num(_midnight(bar.start)) - 0.5 + gap / 2
    right = left + bar.days - gap
    return ((left, bottom), (left, top), (right, top), (right, bottom))


def _value_ticks(axes, bottom: float, top: float, integer: bool) -> None:
    from matplotlib import ticker

    locator = ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10], integer=integer, min_n_ticks=3)
    values = [v for v in locator.tick_values(bottom, top) if bottom - 1e-9 <= v <= top + 1e-9]
    axes.set_ylim(bottom, top)
    axes.set_yticks(values, _distinct_labels(values))


def _distinct_labels(values: list[float]) -> list[str]:
    """The fewest decimals (up to 3) that tell every tick apart and say each value exactly."""
    for decimals in range(4):
        labels = [f"{v:,.{decimals}f}" for v in values]
        exact = all(abs(float(s.replace(",", "")) - v) < 1e-6 for s, v in zip(labels, values, strict=True))
        if exact and len(set(labels)) == len(labels):
            return labels
    return [f"{v:,.3f}" for v in values]


def _date_ticks(axes, span: tuple[date, date]) -> None:
    """As many date ticks as fit the axes' width: days, Mondays, months or years, labelled in full."""
    from matplotlib import dates, ticker

    days = (span[1] - span[0]).days + 1
    width = axes.get_position().width * axes.figure.get_figwidth()
    fit = max(2, int(width / TICK_LABEL_INCHES))
    first, last = _midnight(span[0]), _midnight(span[1])
    low, high = dates.date2num(first), dates.date2num(last)
    # Every day, every second or third day from the first, Mondays, every other Monday, then
    # months and years; weekly bars start at months, since a day's tick would name one day of a bar.
    candidates = [
        (ticker.MultipleLocator(1, offset=low), _day_label),
        (ticker.MultipleLocator(2, offset=low), _day_label),
        (ticker.MultipleLocator(3, offset=low), _day_label),
        (dates.WeekdayLocator(byweekday=dates.MO), _day_label),
        (dates.WeekdayLocator(byweekday=dates.MO, interval=2), _day_label),
        (dates.MonthLocator(), _month_label),
        (dates.MonthLocator(bymonth=(1, 3, 5, 7, 9, 11)), _month_label),
        (dates.MonthLocator(bymonth=(1, 4, 7, 10)), _month_label),
        (dates.MonthLocator(bymonth=(1, 7)), _month_label),
        (dates.YearLocator(), _year_label),
        (dates.YearLocator(2), _year_label),
    ]
    if days > DAILY_BARS_UP_TO_DAYS:
        candidates = candidates[5:]
    for locator, name in candidates:  # noqa: B007 - the last one stands when none fits
        # Date locators take datetimes, the others date numbers; both may return ticks outside.
        ends = (low, high) if isinstance(locator, ticker.MultipleLocator) else (first, last)
        ticks = [t for t in locator.tick_values(*ends) if low - 1e-6 <= t <= high + 1e-6]
        if len(ticks) <= fit:
            break
    shown = [dates.num2date(t).date() for t in ticks]
    # The year goes under the first tick and under the first tick of each later year.
    axes.set_xticks(ticks, [name(day, i == 0 or day.year != shown[i - 1].year) for i, day in enumerate(shown)])


def _day_label(day: date, with_year: bool) -> str:
    return f"{day.day} {day:%b}" + (f"\n{day.year}" if with_year else "")


def _month_label(day: date, with_year: bool) -> str:
    return f"{day:%b}" + (f"\n{day.year}" if with_year else "")


def _year_label(day: date, with_year: bool) -> str:
    return str(day.year)


def _goal_text(value: float) -> str:
    return f"{value:,.1f}" if not float(value).is_integer() and value < 100 else f"{value:,.0f}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())
