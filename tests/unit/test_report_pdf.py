"""The PDF page as matplotlib draws it: the Figure is inspected before it is saved."""

from datetime import UTC, date, datetime, timedelta
from itertools import combinations

import pytest
from matplotlib import dates
from matplotlib.backends.backend_agg import FigureCanvasAgg

from fittrack.core.adapters.report_charts import BAR_COLOR, MET_COLOR
from fittrack.core.adapters.report_pdf import A4_INCHES, MatplotlibReportRenderer, report_figure
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import RangeReport, range_report

STEPS, CALORIES, DISTANCE, ACTIVE, HEART = (
    MetricKind.STEPS,
    MetricKind.CALORIES_BURNED,
    MetricKind.DISTANCE,
    MetricKind.ACTIVE_MINUTES,
    MetricKind.HEART_RATE,
)
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def goal(metric: MetricKind, target: float, period: GoalPeriod = GoalPeriod.DAILY) -> Goal:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Goal(f"{metric.name}-{period.name}", "u1", metric, period, target, True, at, at)


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def a_report(
    start: date, end: date, data_days: list[date], goals=(), display_name: str = "Alice Martin"
) -> RangeReport:
    """Every metric on each of data_days: steps rise 1,000 a day from 6,000 (0.75 m a step), heart rate 60-80."""
    stored: dict[MetricKind, list[DaySummary]] = {metric: [] for metric in MetricKind}
    for n, day in enumerate(data_days):
        steps = 6_000 + 1_000 * (n % 8)
        stored[STEPS].append(DaySummary(day, steps, 0, 120, 600))
        stored[DISTANCE].append(DaySummary(day, steps * 0.75, 0, 100, 600))
        stored[CALORIES].append(DaySummary(day, 2_000 + n % 5 * 100, 0, 10, 1440))
        stored[ACTIVE].append(DaySummary(day, 20 + n % 7 * 5, 0, 1, 60))
        stored[HEART].append(DaySummary(day, 60 + n % 20, 48, 150, 1400))
    return range_report("alice", start, end, stored, list(goals), display_name)


def drawn(report: RangeReport):
    """The page laid out as it will be saved (Agg draws what the PDF backend draws)."""
    figure = report_figure(report)
    FigureCanvasAgg(figure).draw()
    return figure


def chart(figure, metric: MetricKind):
    (axes,) = [a for a in figure.axes if a.get_gid() == metric.name.lower()]
    return axes


def tick_labels(axes, axis: str = "x") -> list[str]:
    return [label.get_text() for label in getattr(axes, f"get_{axis}ticklabels")()]


def title_box(axes, renderer):
    """Where the chart's title is: set on the left (axes.title is the empty centre one)."""
    return axes._left_title.get_window_extent(renderer)


def table_rows(figure) -> dict[str, list[str]]:
    """The summary table's rows by their first cell, the header's under "Metric"."""
    (table,) = [a.tables[0] for a in figure.axes if a.tables]
    rows: dict[int, list[str]] = {}
    for (row, _), cell in sorted(table.get_celld().items()):
        rows.setdefault(row, []).append(cell.get_text().get_text())
    return {cells[0]: cells for cells in rows.values()}


def texts(figure) -> list[str]:
    return [t.get_text() for t in figure.texts]


def test_the_title_names_the_person_by_display_name_and_else_by_username():
    assert "Fittrack report: Alice Martin" in texts(report_figure(a_report(*NOVEMBER, [])))
    assert "Fittrack report: alice" in texts(report_figure(a_report(*NOVEMBER, [], display_name="")))


def test_a_chart_without_data_says_so_and_has_no_made_up_value_ticks():
    figure = drawn(a_report(*NOVEMBER, [], goals=[goal(STEPS, 9_000)]))
    for metric in MetricKind:
        axes = chart(figure, metric)
        assert tick_labels(axes, "y") == []  # was 0, 0, 0, 1, 1, 1
        assert [t.get_text() for t in axes.texts] == ["No data"]
        assert axes.get_legend() is None


@pytest.mark.parametrize(
    ("metric", "value"), [(STEPS, 1), (STEPS, 7), (DISTANCE, 300), (DISTANCE, 40), (ACTIVE, 2), (CALORIES, 123_456)]
)
def test_value_ticks_are_distinct_and_say_their_value(metric, value):
    stored = {metric: [DaySummary(date(2026, 11, 3), value, 0, value, 10)]}
    axes = chart(drawn(range_report("alice", *NOVEMBER, stored, [])), metric)
    labels = tick_labels(axes, "y")
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert [float(label.replace(",", "")) for label in labels] == pytest.approx(list(axes.get_yticks()))


def test_a_november_chart_names_only_november_days_under_the_bars():
    figure = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 30)))
    for metric in MetricKind:
        labels = tick_labels(chart(figure, metric))
        assert labels and all(label.split("\n")[0].endswith(" Nov") for label in labels), labels
        assert labels[0].endswith("\n2026") and not any("Dec" in label or "Oct" in label for label in labels)
    # Day ticks stand at the centres of the days' bars, not at their edges.
    steps = chart(figure, STEPS)
    (bars,) = [c for c in steps.collections if c.get_gid() == "bars"]
    centres = {round((min(p.vertices[:, 0]) + max(p.vertices[:, 0])) / 2, 6) for p in bars.get_paths()}
    ticks = [round(t, 6) for t in steps.get_xticks()]
    assert len(ticks) >= 8 and set(ticks) <= centres


def test_the_charts_span_the_days_with_data_of_a_long_range():
    """Ten years over 15 days of data: each chart spans those days rather than a sliver at the right."""
    first = date(2026, 5, 10)
    report = a_report(date(2016, 6, 1), date(2026, 5, 31), days(first, 15))
    figure = drawn(report)
    expected = (dates.date2num(first) - 0.5, dates.date2num(first + timedelta(days=14)) + 0.5)
    for metric in MetricKind:
        assert chart(figure, metric).get_xlim() == pytest.approx(expected)
    assert "Charts: 10 to 24 May 2026, the part of the range with data; a bar per day" in texts(figure)
    assert "Summary of all 3,652 days" in [a.get_title(loc="left") for a in figure.axes]


def test_legends_sit_above_the_plot_clear_of_bars_goal_line_and_title():
    goals = [goal(STEPS, 9_000), goal(DISTANCE, 6_000), goal(CALORIES, 2_100), goal(ACTIVE, 150, GoalPeriod.WEEKLY)]
    for report in (
        a_report(*NOVEMBER, days(NOVEMBER[0], 30), goals),
        a_report(date(2026, 1, 1), date(2026, 11, 30), days(date(2026, 1, 5), 300), goals),
    ):
        figure = drawn(report)
        renderer = figure.canvas.get_renderer()
        for metric in (STEPS, DISTANCE, CALORIES):
            axes = chart(figure, metric)
            legend = axes.get_legend().get_window_extent(renderer)
            plot = axes.get_window_extent(renderer)
            (line,) = [line for line in axes.lines if line.get_gid() == "goal"]
            goal_y = axes.transData.transform((0, line.get_ydata()[0]))[1]
            assert plot.y0 < goal_y < plot.y1 <= legend.y0, metric  # the line is in the plot, the legend above
            assert not legend.overlaps(title_box(axes, renderer)), metric
            assert legend.x1 <= plot.x1 + 1


def test_distance_is_shown_in_kilometres():
    # 128,765 m over the month, a 6 km daily goal.
    stored = {DISTANCE: [DaySummary(day, 128_765 / 15, 0, 100, 600) for day in days(NOVEMBER[0], 15)]}
    report = range_report("alice", *NOVEMBER, stored, [goal(DISTANCE, 6_000)])
    figure = drawn(report)
    row = table_rows(figure)["Distance"]
    assert row[:3] == ["Distance", "128.8 km", "8.58 km"]
    assert row[5] == "6 km"  # was "6.00 km" here and "daily goal: 6" on the chart
    axes = chart(figure, DISTANCE)
    assert axes.get_title(loc="left") == "Distance (km)"
    (line,) = [line for line in axes.lines if line.get_gid() == "goal"]
    assert line.get_ydata()[0] == pytest.approx(6.0)
    assert line.get_label() == "daily goal: 6 km"
    assert axes.get_ylim()[1] < 20


def test_days_that_met_the_goal_are_drawn_in_their_own_colour_with_a_key():
    from matplotlib.colors import to_rgba

    report = a_report(*NOVEMBER, days(NOVEMBER[0], 8), [goal(STEPS, 9_000)])  # 6,000 to 13,000 steps
    figure = drawn(report)
    (bars,) = [c for c in chart(figure, STEPS).collections if c.get_gid() == "bars"]
    colors = [tuple(c) for c in bars.get_facecolors()]
    met = [bar.goal_met for bar in report.charts[0].bars if bar.value]
    assert met == [False, False, False, True, True, True, True, True]
    assert colors == [to_rgba(MET_COLOR) if m else to_rgba(BAR_COLOR) for m in met]
    (key,) = figure.legends
    assert [t.get_text() for t in key.get_texts()][:2] == ["goal met", "below the goal"]


def test_heart_rate_and_distance_have_charts_of_their_own():
    figure = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 10)))
    assert {a.get_gid() for a in figure.axes} >= {
        "steps",
        "calories_burned",
        "distance",
        "active_minutes",
        "heart_rate",
    }
    heart = chart(figure, HEART)
    (averages,) = [line for line in heart.lines if line.get_gid() == "average"]
    assert list(averages.get_ydata()) == [60 + n for n in range(10)]
    (ranges,) = [c for c in heart.collections if c.get_gid() == "range"]
    assert len(ranges.get_paths()) == 10
    assert heart.get_ylim()[0] == pytest.approx(43) and heart.get_ylim()[1] == pytest.approx(155)


@pytest.mark.parametrize(
    ("start", "end", "data"),
    [
        (*NOVEMBER, []),  # empty
        (date(2026, 11, 2), date(2026, 11, 15), days(date(2026, 11, 2), 14)),  # two weeks
        (date(2025, 12, 1), date(2026, 11, 30), days(date(2026, 11, 10), 15)),  # a year, 15 days of data
        (date(2016, 12, 20), date(2026, 12, 19), days(date(2016, 12, 20), 3652)),  # ten years, weekly bars
        (date(2026, 6, 3), date(2026, 11, 30), days(date(2026, 6, 3), 181)),  # weeks cut at both ends
    ],
    ids=["empty", "two-weeks", "year-of-15-days", "ten-years", "six-months-to-a-monday"],
)
def test_everything_fits_one_a4_page_without_overlapping(start, end, data):
    # Over daily bars, steps have both goals' lines and legends, calories the weekly goal's share alone.
    goals = [
        goal(STEPS, 9_000),
        goal(STEPS, 60_000, GoalPeriod.WEEKLY),
        goal(CALORIES, 2_300, GoalPeriod.WEEKLY),
        goal(DISTANCE, 5_000),
    ]
    figure = drawn(a_report(start, end, data, goals))
    assert tuple(figure.get_size_inches()) == pytest.approx(A4_INCHES)
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    boxes = [a.get_tightbbox(renderer) for a in figure.axes] + [k.get_window_extent(renderer) for k in figure.legends]
    boxes += [t.get_window_extent(renderer) for t in figure.texts]
    for box in boxes:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    for one, other in combinations(boxes, 2):
        assert not one.overlaps(other)


def test_the_matplotlib_renderer_writes_one_pdf_page():
    content = MatplotlibReportRenderer().render(a_report(*NOVEMBER, days(NOVEMBER[0], 30)))
    assert content.startswith(b"%PDF-") and content.count(b"/Type /Page\n") + content.count(b"/Type /Page ") == 1
