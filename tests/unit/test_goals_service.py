"""Creating, changing and measuring goals."""

from datetime import UTC, date, datetime, timedelta

import pytest

from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import AlreadyExists, InvalidArgument, NotFound
from fittrack.core.domain.goals import GoalPeriod, check_target
from fittrack.core.domain.metrics import MetricKind
from tests.unit.fakes import FakeApp, fake_app

DAILY, WEEKLY = GoalPeriod.DAILY, GoalPeriod.WEEKLY
STEPS = MetricKind.STEPS
# Wednesday 10 June 2026, 12:00 in Paris.
NOON_IN_PARIS = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOON_IN_PARIS)


def test_a_new_goal_is_active_and_listed(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    assert (goal.metric, goal.period, goal.target, goal.active) == (STEPS, DAILY, 10_000.0, True)
    assert app.goals.list(alice, include_inactive=False) == [goal]


def test_a_heart_rate_goal_is_refused_because_heart_rate_is_not_summed(app, alice):
    with pytest.raises(InvalidArgument, match="heart rate cannot have a goal"):
        app.goals.create(alice, MetricKind.HEART_RATE, DAILY, 100)
    assert app.goals.list(alice, include_inactive=True) == []


@pytest.mark.parametrize(("metric", "period"), [(0, DAILY), (9, DAILY), (STEPS, 0), (STEPS, 3)])
def test_an_unknown_metric_or_period_is_refused(app, alice, metric, period):
    with pytest.raises(InvalidArgument, match="unknown"):
        app.goals.create(alice, metric, period, 100)


@pytest.mark.parametrize("target", [0, -1, float("nan"), float("inf")])
def test_a_target_that_is_not_a_positive_number_is_refused(app, alice, target):
    with pytest.raises(InvalidArgument, match="target must be greater than 0"):
        app.goals.create(alice, STEPS, DAILY, target)
    assert app.goals.list(alice, include_inactive=True) == []


@pytest.mark.parametrize(
    ("metric", "period", "ceiling"),
    [
        (STEPS, DAILY, 200_000),
        (STEPS, WEEKLY, 1_400_000),
        (MetricKind.CALORIES_BURNED, DAILY, 20_000),
        (MetricKind.DISTANCE, DAILY, 500_000),
        (MetricKind.ACTIVE_MINUTES, DAILY, 1_440),
        (MetricKind.ACTIVE_MINUTES, WEEKLY, 10_080),
    ],
)
def test_a_target_at_the_ceiling_is_accepted_and_just_above_it_is_refused(app, alice, metric, period, ceiling):
    with pytest.raises(InvalidArgument, match="beyond what a person can do"):
        app.goals.create(alice, metric, period, ceiling + 0.5)
    assert app.goals.create(alice, metric, period, ceiling).target == ceiling


def test_a_refused_distance_target_gives_both_numbers_in_metres():
    with pytest.raises(InvalidArgument) as refused:
        check_target(MetricKind.DISTANCE, DAILY, 1_000_000)
    assert str(refused.value) == (
        "a daily distance target of 1,000,000 m is beyond what a person can do; at most 500,000 m"
    )


def test_a_target_over_the_ceiling_is_quoted_as_the_user_sent_it_not_rounded(app, alice):
    with pytest.raises(InvalidArgument) as refused:
        app.goals.create(alice, STEPS, WEEKLY, 1_400_001)
    assert str(refused.value) == (
        "a weekly steps target of 1,400,001 steps is beyond what a person can do; at most 1,400,000 steps"
    )
    with pytest.raises(InvalidArgument, match="target of 200,000.5 steps is beyond"):
        app.goals.create(alice, STEPS, DAILY, 200_000.5)


def test_a_second_goal_for_the_same_metric_and_period_is_refused(app, alice):
    app.goals.create(alice, STEPS, DAILY, 10_000)
    with pytest.raises(AlreadyExists, match="already have a daily steps goal"):
        app.goals.create(alice, STEPS, DAILY, 12_000)
    assert [g.target for g in app.goals.list(alice, include_inactive=True)] == [10_000]


def test_a_daily_and_a_weekly_goal_for_the_same_metric_can_coexist(app, alice):
    app.goals.create(alice, STEPS, DAILY, 10_000)
    app.goals.create(alice, STEPS, WEEKLY, 60_000)
    assert len(app.goals.list(alice, include_inactive=False)) == 2


def test_two_users_can_each_have_the_same_kind_of_goal(app, alice, bob):
    app.goals.create(alice, STEPS, DAILY, 10_000)
    app.goals.create(bob, STEPS, DAILY, 8_000)
    assert [g.target for g in app.goals.list(bob, include_inactive=False)] == [8_000]


def test_updating_a_goal_changes_its_target(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    app.clock.advance(timedelta(minutes=5))
    changed = app.goals.update(alice, goal.goal_id, 12_000, None)
    assert changed.target == 12_000
    assert changed.updated_at == app.clock()
    assert app.goals.list(alice, include_inactive=False)[0].target == 12_000


def test_a_paused_goal_is_listed_only_when_inactive_goals_are_asked_for(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    app.goals.update(alice, goal.goal_id, None, False)
    assert app.goals.list(alice, include_inactive=False) == []
    assert [g.active for g in app.goals.list(alice, include_inactive=True)] == [False]


def test_an_update_that_changes_nothing_is_refused(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    with pytest.raises(InvalidArgument, match="nothing to change"):
        app.goals.update(alice, goal.goal_id, None, None)


def test_an_update_to_an_impossible_target_changes_nothing(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    with pytest.raises(InvalidArgument):
        app.goals.update(alice, goal.goal_id, 10**9, False)
    assert app.goals.list(alice, include_inactive=True) == [goal]


def test_a_deleted_goal_is_gone(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    app.goals.delete(alice, goal.goal_id)
    assert app.goals.list(alice, include_inactive=True) == []
    with pytest.raises(NotFound):
        app.goals.progress(alice, goal.goal_id, None)


def test_a_goal_id_that_does_not_exist_is_not_found(app, alice):
    with pytest.raises(NotFound, match="you have no goal 'nope'"):
        app.goals.update(alice, "nope", 5, None)


def test_a_missing_goal_id_is_an_invalid_argument(app, alice):
    with pytest.raises(InvalidArgument, match="goal_id is missing"):
        app.goals.delete(alice, "")


class TestSomeoneElsesGoal:
    """Another user's goal looks exactly like a missing one, and stays as it was."""

    @pytest.fixture
    def bobs_goal(self, app, bob):
        return app.goals.create(bob, STEPS, DAILY, 8_000)

    def test_it_cannot_be_read(self, app, alice, bobs_goal):
        with pytest.raises(NotFound, match=f"you have no goal '{bobs_goal.goal_id}'"):
            app.goals.progress(alice, bobs_goal.goal_id, None)

    def test_it_cannot_be_updated(self, app, alice, bob, bobs_goal):
        with pytest.raises(NotFound):
            app.goals.update(alice, bobs_goal.goal_id, 1, False)
        assert app.goals.list(bob, include_inactive=True) == [bobs_goal]

    def test_it_cannot_be_deleted(self, app, alice, bob, bobs_goal):
        with pytest.raises(NotFound):
            app.goals.delete(alice, bobs_goal.goal_id)
        assert app.goals.list(bob, include_inactive=True) == [bobs_goal]

    def test_it_is_not_listed(self, app, alice, bobs_goal):
        assert app.goals.list(alice, include_inactive=True) == []


# --- progress ------------------------------------------------------------------


def put_steps(app: FakeApp, user_id: str, **by_day: float) -> None:
    """put_steps(app, uid, d8=1000, d9=...): daily step totals for 2026-06-<n>."""
    for name, value in by_day.items():
        day = date(2026, 6, int(name[1:]))
        app.store.put_days(user_id, STEPS, DaySummary(day, value, 1, 100, 60))


def test_progress_of_a_daily_goal_counts_todays_steps_only(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    put_steps(app, alice.user_id, d9=9_000, d10=4_000, d11=7_000)
    progress = app.goals.progress(alice, goal.goal_id, None)
    assert (progress.period_start, progress.period_end) == (date(2026, 6, 10), date(2026, 6, 10))
    assert progress.current == 4_000
    assert progress.remaining == 6_000
    assert not progress.met


def test_at_local_noon_a_daily_goal_expects_half_its_target(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    progress = app.goals.progress(alice, goal.goal_id, None)
    assert progress.expected_by_now == pytest.approx(5_000)
    assert progress.as_of == NOON_IN_PARIS


def test_today_is_the_users_local_day(app, bob):
    # 10:00 UTC is 06:00 in New York: still 10 June, a quarter of the day gone.
    goal = app.goals.create(bob, STEPS, DAILY, 8_000)
    put_steps(app, bob.user_id, d10=2_000)
    progress = app.goals.progress(bob, goal.goal_id, None)
    assert progress.period_start == date(2026, 6, 10)
    assert progress.expected_by_now == pytest.approx(2_000)
    assert progress.current == 2_000


def test_after_local_midnight_progress_counts_the_new_local_day_although_utc_has_not_turned(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    put_steps(app, alice.user_id, d10=9_000, d11=1_500)
    app.clock.set(datetime(2026, 6, 10, 22, 30, tzinfo=UTC))  # 00:30 on 11 June in Paris
    progress = app.goals.progress(alice, goal.goal_id, None)
    assert progress.period_start == date(2026, 6, 11)
    assert progress.current == 1_500


def test_progress_of_a_weekly_goal_sums_monday_to_sunday(app, alice):
    goal = app.goals.create(alice, STEPS, WEEKLY, 70_000)
    put_steps(app, alice.user_id, d7=50_000, d8=10_000, d9=12_000, d10=3_000, d15=99_000)
    progress = app.goals.progress(alice, goal.goal_id, None)
    assert (progress.period_start, progress.period_end) == (date(2026, 6, 8), date(2026, 6, 14))
    assert progress.current == 25_000
    # Monday 00:00 to Wednesday 12:00 is 2.5 of 7 days.
    assert progress.expected_by_now == pytest.approx(70_000 * 2.5 / 7)


def test_a_met_goal_reports_nothing_remaining(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    put_steps(app, alice.user_id, d10=12_500)
    progress = app.goals.progress(alice, goal.goal_id, None)
    assert progress.met
    assert progress.remaining == 0
    assert progress.fraction == 1.25


def test_progress_on_a_past_day_expects_the_whole_target(app, alice):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    put_steps(app, alice.user_id, d9=9_000)
    progress = app.goals.progress(alice, goal.goal_id, date(2026, 6, 9))
    assert progress.current == 9_000
    assert progress.expected_by_now == 10_000


def test_progress_ignores_another_users_steps(app, alice, bob):
    goal = app.goals.create(alice, STEPS, DAILY, 10_000)
    put_steps(app, bob.user_id, d10=9_000)
    assert app.goals.progress(alice, goal.goal_id, None).current == 0
