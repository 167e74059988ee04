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

from fittrack.core.domain.calendar import week_of
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import DAILY_BARS_UP_TO_DAYS, Chart, ChartBar

BAR_COLOR = "#4a7fc1"  # a day (or week) below the goal
MET_COLOR = "#2b8a3e"  # a day (or week) that reached the goal
NEUTRAL_COLOR = "#8c959f"  # a metric without a goal for its bars: neither met nor missed
PARTIAL_COLOR = "#cdd3da"  # weeks the range cuts: not comparable with the weekly goal
GOAL_COLOR = "#d9480f"
HEART_COLOR = "#c92a2a"
HEART_RANGE_COLOR = "#f4b4b4"
GRID_COLOR = "#e2e2e2"
TICK_FONT = 7.5
LEGEND_LINE_POINTS = 14  # a legend line with its padding, taller than the title: what a raised legend clears
# Space one x tick label needs, in inches ("28 Nov" at TICK_FONT, with a gap).
TICK_LABEL_INCHES = 0.45


def display_scale(metric: MetricKind) -> float:
    """Shown units per stored unit: 0.001 km a metre. The page multiplies by it where the CLI divides
    (MetricKind.shown), and the two round a few amounts differently (8,415 m is 8.42 km here, 8.41 km in
    the CLI); kept as the page has always shown them."""
    return 1 / metric.stored_per_shown


def chart_title(metric: MetricKind) -> str:
    unit = metric.shown_unit
    return metric.title if unit in metric.title.lower() else f"{metric.title} ({unit})"


def amount(metric: MetricKind, value: float) -> str:
    """A stored amount as the page shows it everywhere, with its unit: 10,000 steps, 6 km, 8.58 km, 36.2 min.

    An amount read with decimals (MetricKind.decimals: kilometres) has them up to 100, one fewer up to
    1,000 and none beyond; the rest are whole from 100, else have one decimal; trailing zeros are
    dropped, so a goal of 6 km is "6 km".
    """
    shown = value * display_scale(metric)
    if metric.decimals:
        decimals = metric.decimals if abs(shown) < 100 else metric.decimals - 1 if abs(shown) < 1000 else 0
    else:
        decimals = 0 if abs(shown) >= 100 else 1
    text = f"{shown:,.{decimals}f}"
    if decimals:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {metric.shown_unit}"


def draw_chart(axes, chart: Chart, span: tuple[date, date]) -> None:
    """One metric's chart over span (first and last day) on axes, its legend above the axes."""
    from matplotlib import dates

    axes.set_gid(chart.metric.name.lower())  # so tests and tools can find a metric's chart
    axes.set_title(chart_title(chart.metric), loc="left", fontsize=10, pad=5)
    # Weekly bars stand on their whole weeks, a week the range cuts too, so the axis spans whole weeks.
    first, last = (week_of(span[0])[0], week_of(span[1])[1]) if chart.bar_days == 7 else span
    axes.set_xlim(dates.date2num(_midnight(first)) - 0.5, dates.date2num(_midnight(last)) + 0.5)
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
    if not chart.metric.is_cumulative:
        _heart_rate(axes, chart, shown)
        low = min(bar.low for bar in shown)
        bottom, top = max(0.0, low - 5), max(bar.high for bar in shown) + 5
    else:
        handles = _bars(axes, chart, shown, scale)
        bottom, top = 0.0, max([chart.goal, chart.daily_share, *(bar.value for bar in shown)]) * scale * 1.08
    _value_ticks(axes, bottom, top, integer=not chart.metric.decimals)
    axes.grid(axis="y", color=GRID_COLOR, linewidth=0.6)
    axes.set_axisbelow(True)
    # A goal line's legend goes above the plot, right-aligned, where it never covers a bar or the
    # line: the judged goal's on the title's line, the weekly goal's share (the longer entry) a line
    # higher, clear of the title. What the colours mean is the page's key (chart_key).
    for line in handles:
        if axes.get_legend():
            axes.add_artist(axes.get_legend())  # kept when the next call sets the axes' legend
        raised = line.get_gid() == "weekly-share"
        axes.legend(
            handles=[line],
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            bbox_transform=axes.transAxes + _points_up(axes, LEGEND_LINE_POINTS if raised else 0),
            fontsize=7.5,
            frameon=False,
            borderaxespad=0.2,
            handlelength=2.0,
        ).set_gid(f"{line.get_gid()}-legend")


def chart_key(charts: Sequence[Chart]) -> list:
    """What the colours and marks of the charts mean, once for the page: only what some chart shows."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = [chart for chart in charts if chart.has_data]
    colors = {
        bar_color(chart, bar) for chart in drawn if chart.metric.is_cumulative for bar in chart.bars if bar.value > 0
    }
    per = "daily" if drawn and drawn[0].bar_days == 1 else "weekly"
    labels = {
        MET_COLOR: "goal met",
        BAR_COLOR: "below the goal",
        NEUTRAL_COLOR: f"no {per} goal",
        PARTIAL_COLOR: "week partly outside the range",
    }
    handles = [Patch(color=color, label=label) for color, label in labels.items() if color in colors]
    averaged = [chart for chart in drawn if not chart.metric.is_cumulative]  # heart rate
    if averaged:
        label = f"{per} average {averaged[0].metric.shown_unit}"
        handles.append(Line2D([], [], marker="o", linestyle="", color=HEART_COLOR, markersize=4, label=label))
        handles.append(Patch(color=HEART_RANGE_COLOR, label="lowest to highest minute"))
    return handles


def bar_color(chart: Chart, bar: ChartBar) -> str:
    """Green or blue against the goal; a week the range cuts is not judged, nor is a metric without a goal."""
    if not bar.whole:
        return PARTIAL_COLOR
    if not chart.goal:
        return NEUTRAL_COLOR
    return MET_COLOR if bar.goal_met else BAR_COLOR


def _bars(axes, chart: Chart, shown: list[ChartBar], scale: float) -> list:
    from matplotlib.collections import PolyCollection

    # All bars as one collection of rectangles rather than a patch each (axes.bar): ten years
    # of weekly bars draw in a fraction of the time.
    gap = 0.15 if chart.bar_days == 1 else 1.0  # in days, between neighbouring bars
    rectangles = [_rectangle(chart, bar, gap, 0.0, bar.value * scale) for bar in shown]
    colors = [bar_color(chart, bar) for bar in shown]
    axes.add_collection(PolyCollection(rectangles, facecolors=colors, linewidths=0, gid="bars"), autolim=False)
    lines = []  # top to bottom in the legend
    if chart.daily_share:
        # A pace, not a verdict: no day is judged against it, so it is dotted and the bars keep their colour.
        label = f"weekly goal {amount(chart.metric, chart.weekly_goal)} ÷ 7: {amount(chart.metric, chart.daily_share)}"
        style = {"color": GOAL_COLOR, "linestyle": ":", "linewidth": 1.3}
        lines.append(axes.axhline(chart.daily_share * scale, gid="weekly-share", label=label, **style))
    if chart.goal:
        label = f"{chart.goal_label}: {amount(chart.metric, chart.goal)}"
        style = {"color": GOAL_COLOR, "linestyle": "--", "linewidth": 1.1}
        lines.append(axes.axhline(chart.goal * scale, gid="goal", label=label, **style))
    return lines


def _points_up(axes, points: float):
    from matplotlib.transforms import ScaledTranslation

    return ScaledTranslation(0, points / 72, axes.figure.dpi_scale_trans)


def _heart_rate(axes, chart: Chart, shown: list[ChartBar]) -> None:
    from matplotlib.collections import PolyCollection

    gap = 0.5 if chart.bar_days == 1 else 2.5  # narrower than bars: a range, not an amount
    ranges = [_rectangle(chart, bar, gap, bar.low, bar.high) for bar in shown if bar.high > bar.low]
    axes.add_collection(PolyCollection(ranges, facecolors=HEART_RANGE_COLOR, linewidths=0, gid="range"), autolim=False)
    centres = [sum(_slot(chart, bar)) / 2 for bar in shown]
    size = 3 if len(chart.bars) <= 100 else 1.5  # hundreds of weeks: small dots, or they merge into a band
    axes.plot(centres, [bar.value for bar in shown], "o", color=HEART_COLOR, markersize=size, gid="average")


def _slot(chart: Chart, bar: ChartBar) -> tuple[float, float]:
    """Where a bar stands on the x axis: its day, or its whole Monday-to-Sunday week, even one the range cuts.

    A cut week drawn only over its days in the range would be a sliver (one day less the gap
    between bars is nothing at all); drawn over its week it is as wide as the others, and its
    colour says it is partial.
    """
    from matplotlib import dates

    first, last = (bar.start, bar.start) if chart.bar_days == 1 else week_of(bar.start)
    return dates.date2num(_midnight(first)) - 0.5, dates.date2num(_midnight(last)) + 0.5


def _rectangle(chart: Chart, bar: ChartBar, gap: float, bottom: float, top: float):
    left, right = _slot(chart, bar)
    left, right = left + gap / 2, right - gap / 2
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


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())
