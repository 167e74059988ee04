"""Week and month reports against hand-computed figures, and the CSV download."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.goals import GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import ReportPeriod
from fittrack.core.services.reports import CSV_FORMAT
from tests.unit.fakes import FakeApp, fake_app

WEEK, MONTH = ReportPeriod.WEEK, ReportPeriod.MONTH
STEPS, HEART, DISTANCE, CALORIES, ACTIVE = (
    MetricKind.STEPS,
    MetricKind.HEART_RATE,
    MetricKind.DISTANCE,
    MetricKind.CALORIES_BURNED,
    MetricKind.ACTIVE_MINUTES,
)
# Wednesday 10 June 2026, noon in Paris: the last full week is 1-7 June.
NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


def d(day: int, month: int = 6) -> date:
    return date(2026, month, day)


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOW)


def put(app: FakeApp, user_id: str, metric: MetricKind, values: dict[date, float], minutes: int = 600) -> None:
    app.store.put_days(user_id, metric, *(DaySummary(day, v, 1, 100, minutes) for day, v in values.items()))


@pytest.fixture
def week(app, alice):
    """Steps of 1-7 June (Wednesday without data) against a 10,000 daily goal; 50,000 the week before."""
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 10_000)
    app.goals.create(alice, STEPS, GoalPeriod.WEEKLY, 70_000)
    put(app, alice.user_id, STEPS, {d(1): 12_000, d(2): 8_000, d(4): 10_000, d(5): 15_000, d(6): 11_000, d(7): 10_500})
    put(app, alice.user_id, STEPS, {d(26, 5): 20_000, d(30, 5): 30_000})
    return app.reports.view(alice, WEEK, None)


def section(report, metric: MetricKind):
    (found,) = [m for m in report.metrics if m.metric is metric]
    return found


def test_a_week_report_covers_monday_to_sunday_with_one_section_per_metric(week):
    assert (week.start, week.end) == (d(1), d(7))
    assert [m.metric for m in week.metrics] == list(MetricKind)
    assert [day.day for day in section(week, STEPS).days] == [d(n) for n in range(1, 8)]


def test_a_week_report_totals_the_week(week):
    assert section(week, STEPS).total == 66_500


def test_a_week_report_averages_over_days_with_data_only(week):
    assert section(week, STEPS).average == pytest.approx(66_500 / 6)


def test_a_week_report_names_the_best_day(week):
    steps = section(week, STEPS)
    assert (steps.best_day, steps.best_value) == (d(5), 15_000)


def test_a_week_report_counts_the_days_the_daily_goal_was_met(week):
    steps = section(week, STEPS)
    assert steps.days_goal_met == 5
    assert [day.goal_met for day in steps.days] == [True, False, False, True, True, True, True]
    assert all(day.goal_target == 10_000 for day in steps.days)


def test_a_week_report_counts_the_streak_up_to_the_last_day_of_the_week(week):
    assert section(week, STEPS).current_streak == 4  # Thursday to Sunday; Wednesday had no data


def test_a_week_report_shows_both_goal_targets(week):
    steps = section(week, STEPS)
    assert (steps.daily_goal_target, steps.weekly_goal_target) == (10_000, 70_000)


def test_a_week_report_compares_the_total_with_the_previous_week(week):
    steps = section(week, STEPS)
    assert steps.previous_total == 50_000
    assert steps.change_percent == pytest.approx(33.0)


def test_the_change_is_unset_when_the_previous_week_had_no_data(app, alice):
    put(app, alice.user_id, CALORIES, {d(3): 2_000})
    calories = section(app.reports.view(alice, WEEK, None), CALORIES)
    assert calories.total == 2_000
    assert calories.previous_total == 0
    assert calories.change_percent is None


def test_a_metric_without_any_data_has_no_best_day_and_no_change(week):
    distance = section(week, DISTANCE)
    assert (distance.total, distance.average, distance.best_day, distance.change_percent) == (0, 0, None, None)


def test_without_a_daily_goal_no_day_counts_as_met(week):
    distance = section(week, DISTANCE)
    assert distance.days_goal_met == 0
    assert distance.current_streak == 0
    assert distance.daily_goal_target == 0


def test_a_paused_goal_is_left_out_of_the_report(app, alice):
    goal = app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1_000)
    app.goals.update(alice, goal.goal_id, None, False)
    put(app, alice.user_id, STEPS, {d(7): 5_000})
    steps = section(app.reports.view(alice, WEEK, None), STEPS)
    assert (steps.daily_goal_target, steps.days_goal_met) == (0, 0)


def test_the_heart_rate_section_compares_average_bpm_weighted_by_minutes(app, alice):
    app.store.put_days(
        alice.user_id,
        HEART,
        DaySummary(d(1), 70, 50, 120, 100),
        DaySummary(d(2), 80, 55, 150, 300),
        DaySummary(d(27, 5), 62, 48, 110, 500),
    )
    heart = section(app.reports.view(alice, WEEK, None), HEART)
    assert heart.average == pytest.approx(77.5)
    assert heart.total == 0
    assert heart.change_percent == pytest.approx(25.0)


def test_an_anchor_picks_the_week_that_contains_it(app, alice):
    report = app.reports.view(alice, WEEK, d(17))
    assert (report.start, report.end) == (d(15), d(21))


def test_on_a_monday_the_default_week_is_the_one_that_just_ended(app, alice):
    app.clock.set(datetime(2026, 6, 8, 10, 0, tzinfo=UTC))
    report = app.reports.view(alice, WEEK, None)
    assert (report.start, report.end) == (d(1), d(7))


def test_on_a_sunday_the_default_week_is_the_one_before_the_current_week(app, alice):
    app.clock.set(datetime(2026, 6, 7, 10, 0, tzinfo=UTC))
    report = app.reports.view(alice, WEEK, None)
    assert (report.start, report.end) == (d(25, 5), d(31, 5))


def test_the_default_week_follows_the_users_local_date(app, alice):
    # 23:30 UTC on Sunday is already Monday 01:30 in Paris: the week of 1-7 June has ended there.
    app.clock.set(datetime(2026, 6, 7, 23, 30, tzinfo=UTC))
    report = app.reports.view(alice, WEEK, None)
    assert (report.start, report.end) == (d(1), d(7))


def test_the_default_month_is_the_last_full_month(app, alice):
    report = app.reports.view(alice, MONTH, None)
    assert (report.start, report.end) == (d(1, 5), d(31, 5))


def test_in_january_the_default_month_is_last_december(app, alice):
    app.clock.set(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    report = app.reports.view(alice, MONTH, None)
    assert (report.start, report.end) == (date(2025, 12, 1), date(2025, 12, 31))


def test_a_month_report_compares_with_the_whole_previous_month(app, alice):
    put(app, alice.user_id, STEPS, {d(1, 5): 1_000, d(31, 5): 2_000, d(30, 4): 4_000, d(1, 4): 2_000, d(31, 3): 99})
    steps = section(app.reports.view(alice, MONTH, None), STEPS)
    assert len(steps.days) == 31
    assert steps.total == 3_000
    assert steps.previous_total == 6_000
    assert steps.change_percent == pytest.approx(-50.0)


@pytest.fixture
def may_calories(app, alice):
    """Calories of May 2026 against a 2,000 kcal daily goal (and a 14,000 weekly one); 10,000 in April."""
    app.goals.create(alice, CALORIES, GoalPeriod.DAILY, 2_000)
    app.goals.create(alice, CALORIES, GoalPeriod.WEEKLY, 14_000)
    may = {d(3, 5): 3_000, d(10, 5): 1_000, d(28, 5): 1_900, d(29, 5): 2_100, d(30, 5): 2_000, d(31, 5): 2_500}
    put(app, alice.user_id, CALORIES, {**may, d(15, 4): 5_000, d(30, 4): 5_000, d(1, 6): 9_999})
    return section(app.reports.view(alice, MONTH, None), CALORIES)


def test_a_month_report_matches_its_hand_computed_figures(may_calories):
    # 3,000 + 1,000 + 1,900 + 2,100 + 2,000 + 2,500 = 12,500 kcal over 6 days with data.
    # Goal met on 3, 29, 30 and 31 May (2,000 counts; 1,900 does not); the streak is 29-31 May.
    # April: 10,000 kcal, so +25 %. 1 June belongs to the next month and is left out.
    assert (may_calories.total, may_calories.average) == (12_500, pytest.approx(12_500 / 6))
    assert (may_calories.best_day, may_calories.best_value) == (d(3, 5), 3_000)
    assert (may_calories.days_goal_met, may_calories.current_streak) == (4, 3)
    assert (may_calories.daily_goal_target, may_calories.weekly_goal_target) == (2_000, 14_000)
    assert (may_calories.previous_total, may_calories.change_percent) == (10_000, pytest.approx(25.0))


def test_a_month_report_lists_every_day_with_its_goal_verdict(may_calories):
    days = {day.day: day for day in may_calories.days}
    assert [day.day for day in may_calories.days] == [d(n, 5) for n in range(1, 32)]
    assert [days[d(n, 5)].value for n in (1, 3, 10, 28, 29, 30, 31)] == [0, 3_000, 1_000, 1_900, 2_100, 2_000, 2_500]
    assert [n for n in range(1, 32) if days[d(n, 5)].goal_met] == [3, 29, 30, 31]


def test_a_streak_is_broken_by_a_last_day_below_the_goal(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 5_000)
    put(app, alice.user_id, STEPS, {d(n): 6_000 for n in range(1, 7)} | {d(7): 4_999})
    steps = section(app.reports.view(alice, WEEK, None), STEPS)
    assert (steps.days_goal_met, steps.current_streak) == (6, 0)


# Today is Wednesday 10 June (NOW): its week, 8-14 June, is in progress.


def this_week_of_steps(app, alice, values: dict[date, float]):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 5_000)
    put(app, alice.user_id, STEPS, values)
    return section(app.reports.view(alice, WEEK, d(10)), STEPS)


def test_the_streak_of_a_week_in_progress_counts_back_from_today_once_today_met_the_goal(app, alice):
    # Monday 8 to Wednesday 10 June met 5,000; the Sunday still to come used to end the streak at 0.
    steps = this_week_of_steps(app, alice, {d(8): 6_000, d(9): 5_000, d(10): 7_000})
    assert (steps.current_streak, steps.days_goal_met) == (3, 3)


def test_today_not_yet_at_the_goal_neither_ends_nor_breaks_the_streak(app, alice):
    steps = this_week_of_steps(app, alice, {d(8): 6_000, d(9): 5_000, d(10): 3_000})
    assert (steps.current_streak, steps.days_goal_met) == (2, 2)  # Monday and Tuesday


def test_a_missed_yesterday_breaks_the_streak_that_today_restarts(app, alice):
    steps = this_week_of_steps(app, alice, {d(8): 6_000, d(9): 4_999, d(10): 5_000})
    assert (steps.current_streak, steps.days_goal_met) == (1, 2)


def test_days_after_today_never_count_as_met_even_with_data(app, alice):
    # A reading dated tomorrow (a device clock ahead, inside the upload's tolerance) meets no goal yet.
    steps = this_week_of_steps(app, alice, {d(9): 6_000, d(10): 6_000, d(11): 9_000})
    assert [day.goal_met for day in steps.days] == [False, True, True, False, False, False, False]
    assert (steps.current_streak, steps.days_goal_met) == (2, 2)


def test_a_week_in_progress_counts_its_days_so_far(app, alice):
    steps = this_week_of_steps(app, alice, {d(9): 6_000})
    assert (steps.days_goal_met, steps.days_so_far, len(steps.days), steps.in_progress) == (1, 3, 7, True)


def test_a_month_in_progress_counts_its_days_so_far_and_a_period_to_come_none(app, alice):
    june = section(app.reports.view(alice, MONTH, d(10)), STEPS)
    assert (june.days_so_far, len(june.days), june.in_progress) == (10, 30, True)
    next_week = section(app.reports.view(alice, WEEK, d(17)), STEPS)
    assert (next_week.days_so_far, next_week.current_streak, next_week.in_progress) == (0, 0, True)


def test_an_ended_week_counts_all_its_days(week):
    steps = section(week, STEPS)
    assert (steps.days_so_far, steps.in_progress) == (7, False)


def test_heart_rate_has_no_best_day_in_a_report(app, alice):
    # The highest average bpm is no achievement: the section names none.
    app.store.put_days(alice.user_id, HEART, DaySummary(d(1), 70, 50, 120, 100), DaySummary(d(2), 95, 55, 170, 300))
    heart = section(app.reports.view(alice, WEEK, None), HEART)
    assert (heart.best_day, heart.best_value) == (None, 0)
    assert heart.average == pytest.approx(88.75)  # (70 × 100 + 95 × 300) / 400


def test_a_fall_against_the_previous_week_is_a_negative_change(app, alice):
    # 4,000 this week against 16,000 the week before: (4,000 - 16,000) / 16,000 = -75 %.
    put(app, alice.user_id, STEPS, {d(2): 1_500, d(6): 2_500, d(25, 5): 16_000})
    steps = section(app.reports.view(alice, WEEK, None), STEPS)
    assert steps.change_percent == pytest.approx(-75.0)


def test_an_unknown_report_period_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="unknown report period 3"):
        app.reports.view(alice, 3, None)


def test_a_report_shows_only_the_callers_data(app, alice):
    bob = app.sign_up("bob")
    put(app, bob.user_id, STEPS, {d(3): 9_000})
    assert section(app.reports.view(alice, WEEK, None), STEPS).total == 0


# --- CSV -------------------------------------------------------------------------


@pytest.fixture
def stored(app, alice):
    app.store.put_days(
        alice.user_id, STEPS, DaySummary(d(1), 8_431, 0, 120, 500), DaySummary(d(3), 12_000, 0, 130, 700)
    )
    app.store.put_days(alice.user_id, DISTANCE, DaySummary(d(1), 6_123.5, 0, 150, 500))
    app.store.put_days(alice.user_id, HEART, DaySummary(d(3), 72.25, 48, 171, 900))


def rows_of(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def test_the_csv_has_a_header_and_one_row_per_day(app, alice, stored):
    file = app.reports.download(alice, d(1), d(4), CSV_FORMAT)
    rows = rows_of(file.content)
    assert [r["date"] for r in rows] == ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]
    assert list(rows[0]) == [
        "date",
        "steps",
        "calories",
        "distance",
        "active_minutes",
        "heart_rate",
        "heart_rate_min",
        "heart_rate_max",
    ]


def test_the_csv_parses_back_to_exactly_the_stored_daily_values_of_every_metric(app, alice):
    stored = {}
    for offset, metric in enumerate(MetricKind):
        # Every metric on different days, with whole and two-decimal values.
        stored[metric] = [
            DaySummary(d(day), 1_000 * offset + day * 37.25, 40 + day, 120 + day, 10 * day)
            for day in range(1, 31)
            if (day + offset) % 3
        ]
        app.store.put_days(alice.user_id, metric, *stored[metric])
    rows = {row["date"]: row for row in rows_of(app.reports.download(alice, d(1), d(30), CSV_FORMAT).content)}
    assert len(rows) == 30
    for column, metric, attribute in (
        ("steps", STEPS, "value"),
        ("calories", CALORIES, "value"),
        ("distance", DISTANCE, "value"),
        ("active_minutes", ACTIVE, "value"),
        ("heart_rate", HEART, "value"),
        ("heart_rate_min", HEART, "min"),
        ("heart_rate_max", HEART, "max"),
    ):
        expected = {s.day.isoformat(): getattr(s, attribute) for s in stored[metric]}
        parsed = {day: float(row[column]) for day, row in rows.items() if row[column] != ""}
        assert parsed == expected, column


def test_the_csv_parses_back_to_the_stored_values(app, alice, stored):
    rows = rows_of(app.reports.download(alice, d(1), d(4), CSV_FORMAT).content)
    assert float(rows[0]["steps"]) == 8_431
    assert float(rows[0]["distance"]) == 6_123.5
    assert float(rows[2]["steps"]) == 12_000
    assert [float(rows[2][k]) for k in ("heart_rate", "heart_rate_min", "heart_rate_max")] == [
        72.25,
        48,
        171,
    ]


def test_the_csv_leaves_cells_empty_where_a_day_has_no_data(app, alice, stored):
    rows = rows_of(app.reports.download(alice, d(1), d(4), CSV_FORMAT).content)
    assert rows[1] == {"date": "2026-06-02", **{k: "" for k in list(rows[1])[1:]}}
    assert rows[0]["heart_rate"] == ""
    assert rows[0]["calories"] == ""


def test_whole_numbers_are_written_without_decimals(app, alice, stored):
    content = app.reports.download(alice, d(1), d(1), CSV_FORMAT).content.decode()
    assert content.splitlines()[1] == "2026-06-01,8431,,6123.50,,,,"


def test_the_csv_is_named_after_its_range_and_typed_as_csv(app, alice, stored):
    file = app.reports.download(alice, d(1), d(4), CSV_FORMAT)
    assert file.filename == "fittrack-2026-06-01-2026-06-04.csv"
    assert file.content_type == "text/csv"


def test_a_download_of_ten_years_is_allowed_and_longer_is_refused(app, alice):
    start = date(2016, 1, 1)
    assert len(rows_of(app.reports.download(alice, start, start + timedelta(days=3659), CSV_FORMAT).content)) == 3660
    with pytest.raises(InvalidArgument, match="3661 days; at most 3660"):
        app.reports.download(alice, start, start + timedelta(days=3660), CSV_FORMAT)


def test_a_download_that_ends_before_it_starts_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="before it starts"):
        app.reports.download(alice, d(4), d(1), CSV_FORMAT)


def test_an_unknown_download_format_is_refused_naming_the_valid_ones(app, alice):
    with pytest.raises(InvalidArgument, match=r"unknown report format 3; use CSV \(1\) or PDF \(2\)"):
        app.reports.download(alice, d(1), d(4), 3)
    with pytest.raises(InvalidArgument, match="unknown report format 0"):
        app.reports.download(alice, d(1), d(4), 0)
