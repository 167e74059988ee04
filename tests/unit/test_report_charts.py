"""What the PDF's charts mark: weeks the range cuts, metrics with and without a goal, weekly goals over days."""

from datetime import date, timedelta

import pytest
from matplotlib import dates
from matplotlib.colors import to_rgba

from fittrack.core.adapters.report_charts import BAR_COLOR, MET_COLOR, NEUTRAL_COLOR, PARTIAL_COLOR
from fittrack.core.domain.goals import GoalPeriod
from tests.unit.test_report_pdf import (
    ACTIVE,
    CALORIES,
    DISTANCE,
    HEART,
    NOVEMBER,
    STEPS,
    a_report,
    chart,
    days,
    drawn,
    goal,
    table_rows,
    title_box,
)

# Wednesday 3 June to Monday 30 November 2026: weekly bars, the first week cut to 5 days, the last to 1.
CUT_WEEKS = (date(2026, 6, 3), date(2026, 11, 30))


def key_labels(figure) -> list[str]:
    (key,) = figure.legends
    return [text.get_text() for text in key.get_texts()]


def bars_of(axes):
    """Each bar's left and right edge (date numbers) and its colour, left to right."""
    (bars,) = [c for c in axes.collections if c.get_gid() == "bars"]
    edges = [(min(p.vertices[:, 0]), max(p.vertices[:, 0])) for p in bars.get_paths()]
    return edges, [tuple(c) for c in bars.get_facecolors()]


def monday_to_sunday(monday: date) -> tuple[float, float]:
    """The x span of a whole week: from half a day before its Monday to half a day after its Sunday."""
    return dates.date2num(monday) - 0.5, dates.date2num(monday + timedelta(days=6)) + 0.5


def test_weeks_the_range_cuts_are_drawn_as_wide_as_the_others_inside_the_axis_and_marked_partial():
    report = a_report(*CUT_WEEKS, days(CUT_WEEKS[0], 181), [goal(STEPS, 9_000)])
    figure = drawn(report)
    for metric in (STEPS, DISTANCE, CALORIES, ACTIVE):
        axes = chart(figure, metric)
        left, right = axes.get_xlim()
        edges, colors = bars_of(axes)
        assert len(edges) == 27  # 3-7 June, 25 whole weeks, and Monday 30 November alone
        widths = {round(x1 - x0, 6) for x0, x1 in edges}
        assert widths == {6.0}, metric  # a week less the gap between bars; the 1-day week was 0 wide
        assert left <= edges[0][0] and edges[-1][1] <= right, metric
        # Each cut week stands on its whole week, Monday 1 June and Monday 30 November.
        assert edges[0] == pytest.approx(
            (monday_to_sunday(date(2026, 6, 1))[0] + 0.5, monday_to_sunday(date(2026, 6, 1))[1] - 0.5)
        )
        assert edges[-1] == pytest.approx(
            (monday_to_sunday(date(2026, 11, 30))[0] + 0.5, monday_to_sunday(date(2026, 11, 30))[1] - 0.5)
        )
        assert colors[0] == colors[-1] == to_rgba(PARTIAL_COLOR), metric
        assert to_rgba(PARTIAL_COLOR) not in colors[1:-1], metric
    assert (left, right) == pytest.approx(
        (monday_to_sunday(date(2026, 6, 1))[0], monday_to_sunday(date(2026, 11, 30))[1])
    )
    assert "week partly outside the range" in key_labels(figure)


def test_the_heart_rate_of_a_week_the_range_cuts_is_drawn_whole_at_the_middle_of_its_week():
    figure = drawn(a_report(*CUT_WEEKS, days(CUT_WEEKS[0], 181)))
    heart = chart(figure, HEART)
    left, right = heart.get_xlim()
    (ranges,) = [c for c in heart.collections if c.get_gid() == "range"]
    edges = [(min(p.vertices[:, 0]), max(p.vertices[:, 0])) for p in ranges.get_paths()]
    assert len(edges) == 27 and all(x1 - x0 == pytest.approx(4.5) for x0, x1 in edges)
    assert left <= edges[0][0] and edges[-1][1] <= right
    (averages,) = [line for line in heart.lines if line.get_gid() == "average"]
    centres = list(averages.get_xdata())
    # Thursdays, the middles of the weeks of Monday 1 June and Monday 30 November.
    assert (centres[0], centres[-1]) == pytest.approx(
        (dates.date2num(date(2026, 6, 4)), dates.date2num(date(2026, 12, 3)))
    )
    assert all(left < x < right for x in centres)


def test_a_metric_without_a_goal_is_drawn_in_a_neutral_colour_that_the_key_names():
    figure = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 8), [goal(STEPS, 9_000)]))  # 6,000 to 13,000 steps
    steps, calories = bars_of(chart(figure, STEPS))[1], bars_of(chart(figure, CALORIES))[1]
    assert set(steps) == {to_rgba(MET_COLOR), to_rgba(BAR_COLOR)}
    assert set(calories) == {to_rgba(NEUTRAL_COLOR)}  # was "below the goal" blue
    assert key_labels(figure)[:3] == ["goal met", "below the goal", "no daily goal"]


def test_the_key_lists_only_the_colours_some_chart_shows():
    every_day_met = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 8), [goal(STEPS, 1_000)]))
    assert key_labels(every_day_met)[:2] == ["goal met", "no daily goal"]
    no_goal = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 8)))
    assert key_labels(no_goal) == ["no daily goal", "daily average bpm", "lowest to highest minute"]
    whole_weeks = drawn(a_report(date(2026, 6, 1), date(2026, 11, 29), days(date(2026, 6, 1), 182)))
    assert "week partly outside the range" not in key_labels(whole_weeks)
    assert key_labels(whole_weeks)[0] == "no weekly goal"


def test_a_weekly_goal_over_daily_bars_is_drawn_as_its_daily_share_clear_of_the_title():
    goals = [
        goal(DISTANCE, 35_000, GoalPeriod.WEEKLY),
        goal(CALORIES, 2_100),
        goal(CALORIES, 16_800, GoalPeriod.WEEKLY),
    ]
    figure = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 30), goals))
    renderer = figure.canvas.get_renderer()
    distance = chart(figure, DISTANCE)
    (share,) = [line for line in distance.lines if line.get_gid() == "weekly-share"]
    assert share.get_ydata()[0] == pytest.approx(5.0)  # 35 km a week, 5 km a day
    assert share.get_label() == "weekly goal 35 km ÷ 7: 5 km"
    assert set(bars_of(distance)[1]) == {to_rgba(NEUTRAL_COLOR)}  # no day is judged against a share
    # Calories has both goals: the daily one judged, on the title's line, the weekly share a line above.
    calories = chart(figure, CALORIES)
    assert sorted(line.get_gid() for line in calories.lines) == ["goal", "weekly-share"]
    assert to_rgba(MET_COLOR) in bars_of(calories)[1]
    for axes, expected in ((distance, 1), (calories, 2)):
        legends = [child for child in axes.get_children() if child.get_gid() in ("goal-legend", "weekly-share-legend")]
        assert len(legends) == expected
        plot, title = axes.get_window_extent(renderer), title_box(axes, renderer)
        boxes = [legend.get_window_extent(renderer) for legend in legends]
        for box in boxes:
            assert plot.y1 <= box.y0 and box.x1 <= plot.x1 + 1 and not box.overlaps(title)
        assert not any(one.overlaps(other) for one in boxes for other in boxes if one is not other)


def test_every_goal_reads_the_same_in_the_summary_and_on_its_chart():
    goals = [goal(STEPS, 10_000), goal(DISTANCE, 7_000), goal(CALORIES, 2_400), goal(ACTIVE, 30)]
    figure = drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 30), goals))
    rows = table_rows(figure)
    for metric, title, expected in (
        (STEPS, "Steps", "10,000 steps"),
        (DISTANCE, "Distance", "7 km"),
        (CALORIES, "Calories burned", "2,400 kcal"),
        (ACTIVE, "Active minutes", "30 min"),
    ):
        assert rows[title][5] == expected
        (line,) = [line for line in chart(figure, metric).lines if line.get_gid() == "goal"]
        assert line.get_label() == f"daily goal: {expected}"


def test_days_goal_met_are_counted_out_of_the_days_with_data():
    """Ten years over two days of data: "1 of 2" (6,000 and 7,000 steps against 6,500), not "1 of 3,652"."""
    report = a_report(
        date(2016, 12, 1), date(2026, 11, 30), [date(2026, 11, 24), date(2026, 11, 25)], [goal(STEPS, 6_500)]
    )
    rows = table_rows(drawn(report))
    assert rows["Steps"][6] == "1 of 2"
    assert rows["Metric"][6] == "Goal met, of\ndays with data"
    assert rows["Distance"][6] == "–"  # no goal


def test_heart_rate_shows_the_range_of_its_minutes_instead_of_a_best_day():
    rows = table_rows(drawn(a_report(*NOVEMBER, days(NOVEMBER[0], 10))))
    assert rows["Heart rate"][3] == "range: 48–150 bpm"  # the lowest and highest minute of the month
    assert rows["Steps"][3] == "8 Nov 2026: 13,000 steps"
