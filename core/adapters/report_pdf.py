"""The PDF download: a one-page A4 summary with bar charts, drawn with matplotlib.

Only matplotlib's object API is used (a Figure and the PDF backend's canvas,
no pyplot): nothing global is configured and no display is needed, so it runs
in the server's worker threads. matplotlib is imported on the first render,
so servers and clients that never render one do not pay for the import.
"""

from __future__ import annotations

import io
import threading
from datetime import date, datetime, time

from core.domain.metrics import MetricKind
from core.domain.reports import Chart, RangeFigures, RangeReport
from core.ports import ReportRenderer

A4_INCHES = (8.27, 11.69)
BAR_COLOR = "#3b7dd8"
PARTIAL_COLOR = "#a9c4ec"  # weeks the range cuts: not comparable with the weekly goal
GOAL_COLOR = "#d9480f"
TITLES = {
    MetricKind.STEPS: "Steps",
    MetricKind.CALORIES_BURNED: "Calories burned",
    MetricKind.DISTANCE: "Distance",
    MetricKind.ACTIVE_MINUTES: "Active minutes",
    MetricKind.HEART_RATE: "Heart rate",
}
TABLE_COLUMNS = ("Metric", "Total", "Daily average", "Best day", "Days\nwith data", "Daily goal", "Days\ngoal met")
TABLE_WIDTHS = (0.15, 0.17, 0.14, 0.2, 0.11, 0.11, 0.12)


class MatplotlibReportRenderer(ReportRenderer):
    content_type = "application/pdf"
    extension = "pdf"

    def __init__(self) -> None:
        # matplotlib keeps process-wide caches (fonts, text layout, unit converters) that it
        # does not promise to guard, so one figure is drawn at a time; a render takes well
        # under a second even for ten years (a bar per week).
        self._lock = threading.Lock()

    def render(self, report: RangeReport) -> bytes:
        with self._lock:
            return _render(report)


def _render(report: RangeReport) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=A4_INCHES)
    grid = figure.add_gridspec(3, 1, height_ratios=(0.7, 1.6, 1.6), left=0.1, right=0.95, top=0.9, bottom=0.05)
    grid.update(hspace=0.35)
    # parse_math=False: the title is plain text, never mathtext.
    title = f"Fittrack report: {report.username}"
    figure.text(0.5, 0.965, title, ha="center", fontsize=16, weight="bold", parse_math=False)
    span = f"{_long_date(report.start)} to {_long_date(report.end)} ({report.days:,} days)"
    figure.text(0.5, 0.94, span, ha="center", fontsize=11)
    _summary_table(figure.add_subplot(grid[0]), report)
    for position, chart in enumerate(report.charts, start=1):
        _bar_chart(figure.add_subplot(grid[position]), chart)
    out = io.BytesIO()
    figure.savefig(
        out,
        format="pdf",
        # No creation date, so the same figures make the same bytes.
        metadata={"Title": f"Fittrack report {report.start} to {report.end}", "CreationDate": None},
    )
    return out.getvalue()


def _summary_table(axes, report: RangeReport) -> None:
    axes.axis("off")
    rows = [_table_row(figures, report.days) for figures in report.figures]
    table = axes.table(
        cellText=rows, colLabels=TABLE_COLUMNS, colWidths=TABLE_WIDTHS, loc="upper center", cellLoc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.45)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_height(cell.get_height() * 1.7)
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8eef8")
    axes.set_title("Summary", loc="left", fontsize=12)


def _table_row(figures: RangeFigures, days: int) -> list[str]:
    metric = figures.metric
    unit = metric.unit
    has_data = figures.days_with_data > 0
    total = "" if metric is MetricKind.HEART_RATE or not has_data else f"{_number(figures.total)} {unit}"
    average = f"{_number(figures.average)} {unit}" if has_data else ""
    best = f"{figures.best_day} ({_number(figures.best_value)})" if figures.best_day else ""
    goal = _number(figures.daily_goal_target) if figures.daily_goal_target else ""
    met = f"{figures.days_goal_met:,} of {days:,}" if figures.daily_goal_target else ""
    cells = [total, average, best, f"{figures.days_with_data:,}", goal, met]
    return [TITLES[metric], *(cell or "–" for cell in cells)]


def _bar_chart(axes, chart: Chart) -> None:
    from matplotlib import dates, ticker
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    positions = dates.date2num([datetime.combine(bar.start, time()) for bar in chart.bars])
    # All bars as one collection of rectangles rather than a patch each (axes.bar): ten years
    # of weekly bars draw in a fraction of the time. A bar is a little narrower than its span.
    rectangles = []
    for x, bar in zip(positions, chart.bars, strict=True):
        if bar.value > 0:  # a day or week without data is a gap
            right = x + (bar.days * 0.85 if chart.bar_days == 1 else bar.days - 0.8)
            rectangles.append(((x, 0), (x, bar.value), (right, bar.value), (right, 0)))
    colors = [BAR_COLOR if bar.whole else PARTIAL_COLOR for bar in chart.bars if bar.value > 0]
    axes.add_collection(PolyCollection(rectangles, facecolors=colors, linewidths=0), autolim=False)
    legend = []
    if chart.goal:
        legend.append(axes.axhline(chart.goal, color=GOAL_COLOR, linestyle="--", linewidth=1.2, label=chart.goal_label))
    if not all(bar.whole for bar in chart.bars):
        legend.append(Patch(color=PARTIAL_COLOR, label="week only partly in the range"))
    if legend:
        axes.legend(handles=legend, loc="upper right", fontsize=8, frameon=False)
    per = "day" if chart.bar_days == 1 else "week (Monday to Sunday)"
    axes.set_title(f"{TITLES[chart.metric]} per {per}", loc="left", fontsize=12)
    axes.set_ylabel(chart.metric.unit)
    axes.set_ylim(bottom=0, top=max([chart.goal, *(bar.value for bar in chart.bars)]) * 1.12 or 1)
    if chart.bars:
        last = chart.bars[-1]
        axes.set_xlim(positions[0] - 0.5, positions[-1] + last.days + 0.5)
    locator = dates.AutoDateLocator(minticks=4, maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    axes.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"
