"""The PDF download's figures, as the service hands them to a renderer, against hand-computed values."""

from datetime import date, timedelta

import pytest

from fittrack.core.domain.accounts import ProfileChanges
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import InvalidArgument, Unavailable
from fittrack.core.domain.goals import GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import ChartBar, RangeFigures, RangeReport
from fittrack.core.ports import ReportRenderer
from fittrack.core.services.reports import CSV_FORMAT, PDF_FORMAT, Reports
from tests.unit.fakes import FakeApp, fake_app
from tests.unit.test_reports import CALORIES, DISTANCE, HEART, NOW, STEPS, d, put


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOW)


class RecordingRenderer(ReportRenderer):
    """Keeps the figures it is asked to draw; the "document" is their repr."""

    content_type = "application/x-test"
    extension = "test"

    def __init__(self) -> None:
        self.drawn: list[RangeReport] = []

    def render(self, report: RangeReport) -> bytes:
        self.drawn.append(report)
        return repr(report).encode()


@pytest.fixture
def renderer() -> RecordingRenderer:
    return RecordingRenderer()


@pytest.fixture
def pdf_reports(app, renderer) -> Reports:
    return Reports(app.database, app.store, app.clock, renderer)


def drawn(pdf_reports, renderer, principal, start: date, end: date) -> RangeReport:
    file = pdf_reports.download(principal, start, end, PDF_FORMAT)
    assert file.content == repr(renderer.drawn[-1]).encode()
    return renderer.drawn[-1]


def test_a_pdf_download_is_named_and_typed_by_the_renderer(pdf_reports, renderer, alice):
    file = pdf_reports.download(alice, d(1), d(30), PDF_FORMAT)
    assert (file.filename, file.content_type) == ("fittrack-2026-06-01-2026-06-30.test", "application/x-test")


def test_a_pdf_of_a_week_sums_up_each_metric_against_the_daily_goal(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    put(app, alice.user_id, STEPS, {d(1): 12_000, d(2): 8_000, d(4): 10_000, d(5): 15_000, d(6): 11_000, d(7): 10_500})
    report = drawn(pdf_reports, renderer, alice, d(1), d(7))
    assert (report.username, report.start, report.end, report.days) == ("alice", d(1), d(7), 7)
    steps, calories = report.figures[0], report.figures[1]
    # 66,500 steps over 6 days with data; met on 1, 4, 5, 6 and 7 June.
    assert steps == RangeFigures(STEPS, 66_500, pytest.approx(66_500 / 6), d(5), 15_000, 6, 5, 10_000)
    assert calories == RangeFigures(CALORIES, 0, 0, None, 0, 0, 0, 0)
    assert [f.metric for f in report.figures] == list(MetricKind)


def test_a_short_range_is_charted_a_bar_a_day_with_the_daily_goal_line(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    app.goals.create(alice, STEPS, GoalPeriod.WEEKLY, 50_000)
    put(app, alice.user_id, STEPS, {d(2): 8_000, d(3): 9_000})
    steps_chart, calories_chart, *_ = drawn(pdf_reports, renderer, alice, d(1), d(4)).charts
    assert (steps_chart.metric, steps_chart.bar_days) == (STEPS, 1)
    assert [(bar.start, bar.value) for bar in steps_chart.bars] == [(d(1), 0), (d(2), 8_000), (d(3), 9_000), (d(4), 0)]
    assert (steps_chart.goal, steps_chart.goal_label) == (10_000, "daily goal")
    assert (calories_chart.metric, calories_chart.goal, calories_chart.goal_label) == (CALORIES, 0, "")


def test_a_weekly_goal_over_daily_bars_is_given_with_its_daily_share(app, pdf_reports, renderer, alice):
    app.goals.create(alice, DISTANCE, GoalPeriod.WEEKLY, 35_000)
    daily = drawn(pdf_reports, renderer, alice, d(1), d(30)).charts[2]
    assert (daily.metric, daily.bar_days, daily.goal, daily.goal_label) == (DISTANCE, 1, 0, "")
    assert (daily.weekly_goal, daily.daily_share) == (35_000, 5_000)
    weekly = drawn(pdf_reports, renderer, alice, d(1), d(30, 9)).charts[2]
    assert (weekly.bar_days, weekly.goal, weekly.goal_label, weekly.daily_share) == (7, 35_000, "weekly goal", 0)


def test_pdf_figures_count_goal_days_over_days_with_data_and_give_heart_rate_a_range(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    put(app, alice.user_id, STEPS, {d(2): 12_000, d(3): 9_000})
    app.store.put_days(alice.user_id, HEART, DaySummary(d(2), 60, 48, 150, 600), DaySummary(d(3), 90, 52, 171, 200))
    report = drawn(pdf_reports, renderer, alice, date(2016, 7, 1), d(30))  # ten years, two days of data
    steps, heart = report.figures[0], report.figures[4]
    assert (steps.days_goal_met, steps.days_with_data) == (1, 2)
    assert (heart.best_day, heart.low, heart.high) == (None, 48, 171)
    assert (steps.low, steps.high) == (0, 0)


def test_ninety_two_days_still_get_a_bar_a_day(pdf_reports, renderer, alice):
    chart = drawn(pdf_reports, renderer, alice, d(1), d(1) + timedelta(days=91)).charts[0]
    assert (chart.bar_days, len(chart.bars)) == (1, 92)


def test_a_long_range_is_charted_a_bar_a_week_with_the_weekly_goal(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    app.goals.create(alice, STEPS, GoalPeriod.WEEKLY, 60_000)
    # Wednesday 3 June to Thursday 3 September 2026: 93 days, 5 + 12 weeks of 7 + 4, so 14 bars.
    start, end = d(3), date(2026, 9, 3)
    put(app, alice.user_id, STEPS, {d(3): 1_000, d(7): 2_000, d(8): 4_000, d(14): 500, date(2026, 9, 3): 700})
    chart = drawn(pdf_reports, renderer, alice, start, end).charts[0]
    assert (chart.bar_days, chart.goal, chart.goal_label) == (7, 60_000, "weekly goal")
    # Wednesday to Sunday 3-7 June is cut by the range; Monday 31 August to Thursday 3 September too.
    assert chart.bars[0] == ChartBar(d(3), 5, 3_000, False)
    assert chart.bars[1] == ChartBar(d(8), 7, 4_500, True)
    assert chart.bars[-1] == ChartBar(date(2026, 8, 31), 4, 700, False)
    assert len(chart.bars) == 14
    assert sum(bar.days for bar in chart.bars) == 93


def test_weekly_bars_with_only_a_daily_goal_show_seven_times_it(app, pdf_reports, renderer, alice):
    app.goals.create(alice, CALORIES, GoalPeriod.DAILY, 2_500)
    chart = drawn(pdf_reports, renderer, alice, date(2025, 6, 1), d(1)).charts[1]
    assert (chart.metric, chart.bar_days, chart.goal, chart.goal_label) == (CALORIES, 7, 17_500, "daily goal × 7")


def test_a_paused_goal_draws_no_line(app, pdf_reports, renderer, alice):
    goal = app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    app.goals.update(alice, goal.goal_id, None, False)
    report = drawn(pdf_reports, renderer, alice, d(1), d(7))
    assert (report.charts[0].goal, report.figures[0].daily_goal_target) == (0, 0)


def test_a_pdf_holds_only_the_callers_data(app, pdf_reports, renderer, alice, bob):
    put(app, bob.user_id, STEPS, {d(3): 9_000})
    report = drawn(pdf_reports, renderer, alice, d(1), d(7))
    assert report.figures[0].days_with_data == 0
    assert all(bar.value == 0 for bar in report.charts[0].bars)


def test_a_pdf_download_keeps_the_range_checks(pdf_reports, alice):
    with pytest.raises(InvalidArgument, match="at most 3660"):
        pdf_reports.download(alice, date(2016, 1, 1), date(2026, 1, 8), PDF_FORMAT)
    with pytest.raises(InvalidArgument, match="before it starts"):
        pdf_reports.download(alice, d(4), d(1), PDF_FORMAT)


def test_without_a_renderer_a_pdf_download_is_unavailable_and_csv_still_works(app, alice):
    reports = Reports(app.database, app.store, app.clock)
    with pytest.raises(Unavailable, match="download CSV instead"):
        reports.download(alice, d(1), d(4), PDF_FORMAT)
    assert reports.download(alice, d(1), d(4), CSV_FORMAT).content.startswith(b"date,")


def test_the_matplotlib_renderer_draws_a_pdf_the_same_way_every_time(app, alice):
    from fittrack.core.adapters.report_pdf import MatplotlibReportRenderer

    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 8_000)
    put(app, alice.user_id, STEPS, {d(1) + timedelta(days=n): 5_000 + 40 * n for n in range(0, 400, 3)})
    reports = Reports(app.database, app.store, app.clock, MatplotlibReportRenderer())
    first = reports.download(alice, d(1), d(1) + timedelta(days=399), PDF_FORMAT)
    again = reports.download(alice, d(1), d(1) + timedelta(days=399), PDF_FORMAT)
    assert first.content_type == "application/pdf"
    assert first.filename == "fittrack-2026-06-01-2027-07-05.pdf"
    assert first.content.startswith(b"%PDF-") and first.content.rstrip().endswith(b"%%EOF")
    assert first.content == again.content


def test_a_pdf_names_the_person_by_their_display_name_or_else_their_username(app, pdf_reports, renderer, alice):
    assert drawn(pdf_reports, renderer, alice, d(1), d(7)).name == "alice"
    app.accounts.update_profile(alice, ProfileChanges(display_name="Alice Martin"))
    report = drawn(pdf_reports, renderer, alice, d(1), d(7))
    assert (report.name, report.username) == ("Alice Martin", "alice")


def test_every_metric_is_charted_heart_rate_and_distance_included(pdf_reports, renderer, alice):
    report = drawn(pdf_reports, renderer, alice, d(1), d(7))
    assert [chart.metric for chart in report.charts] == list(MetricKind)


def test_charts_span_the_days_with_data_while_the_summary_covers_the_whole_range(app, pdf_reports, renderer, alice):
    """Ten years asked for over 15 days of data: the charts are those 15 days, a bar each."""
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    data = {d(10, 5) + timedelta(days=n): 9_000 + 200 * n for n in range(15)}
    put(app, alice.user_id, STEPS, data)
    put(app, alice.user_id, HEART, {d(12, 5): 70})
    report = drawn(pdf_reports, renderer, alice, date(2016, 6, 1), date(2026, 5, 31))
    assert (report.chart_start, report.chart_end, report.chart_days) == (d(10, 5), d(24, 5), 15)
    steps_chart = report.charts[0]
    assert steps_chart.bar_days == 1
    assert [bar.start for bar in steps_chart.bars] == sorted(data)
    assert all(chart.bars[0].start == d(10, 5) and len(chart.bars) == 15 for chart in report.charts)
    # The summary still covers the whole range: its days and every day with data.
    assert report.days == 3652
    assert (report.figures[0].days_with_data, report.figures[0].days_goal_met) == (15, 10)


def test_a_span_of_data_longer_than_92_days_is_charted_in_whole_weeks_inside_the_range(
    app, pdf_reports, renderer, alice
):
    # Data from Wednesday 3 June to Thursday 3 September 2026 (93 days) of a two-year range.
    put(app, alice.user_id, DISTANCE, {d(3): 1_000, date(2026, 9, 3): 2_000})
    report = drawn(pdf_reports, renderer, alice, date(2025, 1, 1), date(2026, 12, 31))
    assert (report.chart_start, report.chart_end) == (d(1), date(2026, 9, 6))  # Monday to Sunday
    chart = report.charts[2]
    assert (chart.metric, chart.bar_days, len(chart.bars)) == (DISTANCE, 7, 14)
    assert all(bar.whole for bar in chart.bars)


def test_a_span_shorter_than_a_week_is_widened_to_a_week_inside_the_range(app, pdf_reports, renderer, alice):
    put(app, alice.user_id, STEPS, {d(28): 5_000})
    report = drawn(pdf_reports, renderer, alice, d(1), d(30))
    assert (report.chart_start, report.chart_end) == (d(24), d(30))
    assert len(report.charts[0].bars) == 7


def test_without_any_data_the_charts_span_the_whole_range(pdf_reports, renderer, alice):
    report = drawn(pdf_reports, renderer, alice, d(1), d(30))
    assert (report.chart_start, report.chart_end) == (d(1), d(30))
    assert not any(chart.has_data for chart in report.charts)


def test_days_that_met_the_daily_goal_are_marked_on_the_chart(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    put(app, alice.user_id, STEPS, {d(1): 12_000, d(2): 8_000, d(3): 10_000, d(7): 9_999})
    chart = drawn(pdf_reports, renderer, alice, d(1), d(7)).charts[0]
    assert [(bar.start.day, bar.goal_met) for bar in chart.bars] == [
        (1, True),
        (2, False),
        (3, True),
        (4, False),
        (5, False),
        (6, False),
        (7, False),
    ]
    calories = drawn(pdf_reports, renderer, alice, d(1), d(7)).charts[1]
    assert not any(bar.goal_met for bar in calories.bars)  # no goal, nothing met


def test_a_week_counts_as_met_only_when_whole_and_at_the_weekly_goal(app, pdf_reports, renderer, alice):
    app.goals.create(alice, STEPS, GoalPeriod.WEEKLY, 20_000)
    # Range Wednesday 3 June to Thursday 3 September: the first and last weeks are cut by it.
    put(app, alice.user_id, STEPS, {d(3): 30_000, d(8): 20_000, d(15): 19_999, date(2026, 9, 3): 30_000})
    chart = drawn(pdf_reports, renderer, alice, d(3), date(2026, 9, 3)).charts[0]
    assert [bar.goal_met for bar in chart.bars[:3]] == [False, True, False]
    assert (chart.bars[-1].whole, chart.bars[-1].goal_met) == (False, False)


def test_the_heart_rate_chart_has_each_days_average_and_range_and_each_weeks_over_its_minutes(
    app, pdf_reports, renderer, alice
):
    app.store.put_days(alice.user_id, HEART, DaySummary(d(1), 60, 50, 120, 600), DaySummary(d(2), 90, 55, 170, 200))
    daily = drawn(pdf_reports, renderer, alice, d(1), d(7)).charts[4]
    assert (daily.metric, daily.goal) == (HEART, 0)
    assert [(bar.value, bar.low, bar.high) for bar in daily.bars[:3]] == [(60, 50, 120), (90, 55, 170), (0, 0, 0)]
    app.store.put_days(alice.user_id, HEART, DaySummary(d(30, 9), 70, 60, 80, 100))
    weekly = drawn(pdf_reports, renderer, alice, d(1), d(30, 9)).charts[4]
    assert weekly.bar_days == 7
    assert weekly.bars[0] == ChartBar(d(1), 7, pytest.approx(67.5), True, False, 50, 170)
