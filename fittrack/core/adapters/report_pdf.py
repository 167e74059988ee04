"""The PDF download: a one-page A4 summary with a chart per metric, drawn with matplotlib.

Only matplotlib's object API is used (a Figure and the PDF backend's canvas,
no pyplot): nothing global is configured and no display is needed, so it runs
in the server's worker threads. matplotlib is imported on the first render,
so servers and clients that never render one do not pay for the import.
The charts themselves are drawn by fittrack.core.adapters.report_charts.
"""

from __future__ import annotations

import io
import threading
from datetime import date

from fittrack.core.adapters.report_charts import amount, chart_key, draw_chart
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import RangeFigures, RangeReport
from fittrack.core.ports import ReportRenderer

A4_INCHES = (8.27, 11.69)
LEFT, RIGHT = 0.08, 0.97  # the page's margins, as fractions of its width
HEADER_COLOR = "#e8eef8"
RULE_COLOR = "#c3cad6"
STRIPE_COLOR = "#f5f7fa"
# Goal met is out of the days with data (the column before): days before the first reading, or
# after today, cannot be judged, and over ten years of two days' data "2 of 3,652" says nothing.
TABLE_COLUMNS = (
    "Metric",
    "Total",
    "Daily average",
    "Best day",
    "Days\nwith data",
    "Daily goal",
    "Goal met, of\ndays with data",
)
TABLE_WIDTHS = (0.14, 0.14, 0.13, 0.21, 0.1, 0.12, 0.16)
# Where each metric's chart goes on a grid of three rows and two columns: steps across the page.
CHART_CELLS = {
    MetricKind.STEPS: (0, slice(0, 2)),
    MetricKind.DISTANCE: (1, 0),
    MetricKind.CALORIES_BURNED: (1, 1),
    MetricKind.ACTIVE_MINUTES: (2, 0),
    MetricKind.HEART_RATE: (2, 1),
}
# A kind without a cell would fail only when someone downloads a PDF; better at import, when a metric is added.
assert set(CHART_CELLS) == set(MetricKind), f"no chart cell for {set(MetricKind) - set(CHART_CELLS)}"


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
    out = io.BytesIO()
    report_figure(report).savefig(
        out,
        format="pdf",
        # No creation date, so the same figures make the same bytes.
        metadata={"Title": f"Fittrack report {report.start} to {report.end}", "CreationDate": None},
    )
    return out.getvalue()


def report_figure(report: RangeReport):
    """The page as a matplotlib Figure, before it is saved: what tests inspect."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=A4_INCHES)
    # parse_math=False: the name is the user's text, never mathtext.
    title = f"Fittrack report: {report.name}"
    figure.text(0.5, 0.966, title, ha="center", fontsize=16, weight="bold", parse_math=False, gid="title")
    span = f"{_long_date(report.start)} to {_long_date(report.end)} ({_days(report.days)})"
    figure.text(0.5, 0.945, span, ha="center", fontsize=10.5, gid="range")
    figure.text(0.5, 0.929, _charts_line(report), ha="center", fontsize=8.5, color="#555555", gid="charts-span")
    _summary_table(figure.add_axes((LEFT, 0.735, RIGHT - LEFT, 0.16)), report)
    key = chart_key(report.charts)
    if key:
        figure.legend(
            handles=key,
            loc="center",
            bbox_to_anchor=(0.5, 0.697),
            # One row fits four entries across the page; more take two rows.
            ncols=len(key) if len(key) <= 4 else (len(key) + 1) // 2,
            fontsize=8,
            frameon=False,
            handlelength=1.4,
            columnspacing=1.6,
        )
    grid = figure.add_gridspec(3, 2, left=LEFT, right=RIGHT, top=0.655, bottom=0.035, hspace=0.42, wspace=0.2)
    span_days = (report.chart_start or report.start, report.chart_end or report.end)
    for chart in report.charts:
        row, column = CHART_CELLS[chart.metric]
        draw_chart(figure.add_subplot(grid[row, column]), chart, span_days)
    return figure


def _charts_line(report: RangeReport) -> str:
    """What the charts cover: the span with data, when that is less than the range."""
    if not any(figures.days_with_data for figures in report.figures):
        return "No readings in this range"
    per = "a bar per day" if report.charts[0].bar_days == 1 else "a bar per week (Monday to Sunday)"
    start, end = report.chart_start or report.start, report.chart_end or report.end
    if (start, end) == (report.start, report.end):
        return f"Charts: {per}"
    return f"Charts: {_short_span(start, end)}, the part of the range with data; {per}"


def _summary_table(axes, report: RangeReport) -> None:
    from matplotlib.table import Table

    axes.axis("off")
    # The summary is over the whole range even when the charts are not (see _charts_line).
    whole = f"all {_days(report.days)}" if report.days > 1 else "the day"
    axes.set_title(f"Summary of {whole}", loc="left", fontsize=11, weight="bold", pad=4)
    rows = [_table_row(figures) for figures in report.figures]
    table = Table(axes, bbox=(0, 0, 1, 1))
    height = 1 / (len(rows) + 1.5)  # the header is one and a half rows: its labels take two lines
    for column, (label, width) in enumerate(zip(TABLE_COLUMNS, TABLE_WIDTHS, strict=True)):
        cell = table.add_cell(0, column, width, height * 1.5, text=label, loc=_align(column), facecolor=HEADER_COLOR)
        cell.set_text_props(weight="bold")
    for row, cells in enumerate(rows, start=1):
        fill = STRIPE_COLOR if row % 2 == 0 else "white"
        for column, (text, width) in enumerate(zip(cells, TABLE_WIDTHS, strict=True)):
            table.add_cell(row, column, width, height, text=text, loc=_align(column), facecolor=fill)
    for cell in table.get_celld().values():
        cell.visible_edges = "B"  # rules between rows only, as a printed table has
        cell.set_edgecolor(RULE_COLOR)
        cell.set_linewidth(0.6)
        cell.PAD = 0.04
        cell.get_text().set_parse_math(False)
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    axes.add_table(table)


def _align(column: int) -> str:
    return "left" if column in (0, 3) else "right"


def _table_row(figures: RangeFigures) -> list[str]:
    metric = figures.metric
    has_data = figures.days_with_data > 0
    total = amount(metric, figures.total) if metric.is_cumulative and has_data else ""
    average = amount(metric, figures.average) if has_data else ""
    if figures.best_day:
        best = f"{_short_date(figures.best_day)}: {amount(metric, figures.best_value)}"
    elif not metric.is_cumulative and has_data:
        # No best day for an average (heart rate: its highest is no achievement): the range of its minutes.
        best = f"range: {figures.low:,.0f}–{amount(metric, figures.high)}"
    else:
        best = ""
    goal = amount(metric, figures.daily_goal_target) if figures.daily_goal_target else ""
    met = f"{figures.days_goal_met:,} of {figures.days_with_data:,}" if figures.daily_goal_target and has_data else ""
    cells = [total, average, best, f"{figures.days_with_data:,}", goal, met]
    return [metric.title, *(cell or "–" for cell in cells)]


def _days(count: int) -> str:
    return f"{count:,} day" if count == 1 else f"{count:,} days"


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _short_date(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _short_span(start: date, end: date) -> str:
    """10 to 24 November 2026; 28 October to 3 November 2026; 30 December 2025 to 2 January 2026."""
    if start.year != end.year:
        return f"{_long_date(start)} to {_long_date(end)}"
    if start.month != end.month:
        return f"{start.day} {start:%B} to {_long_date(end)}"
    return f"{start.day} to {_long_date(end)}"
