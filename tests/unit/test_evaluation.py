"""The behind-pace rule and the batch evaluator, at their boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.evaluation import (
    SLOT,
    EvaluationWork,
    UserGoals,
    active_fraction,
    expected_by,
    nudges,
    parse_clock_times,
    slot_instants,
)
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.notifications import NotificationKind, NotificationPreferences
from fittrack.core.ports import NotificationQueue
from fittrack.core.services.evaluation import EvaluationSettings, GoalEvaluator, WorkClaims
from tests.unit.fakes import FakeAccountsDatabase, FakeClock, FakeMetricStore

WEDNESDAY = date(2026, 11, 18)
AT_16 = time(16, 0)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


def goal(
    target: float = 10_000,
    metric: MetricKind = MetricKind.STEPS,
    period: GoalPeriod = GoalPeriod.DAILY,
    goal_id: str = "g1",
    user_id: str = "u1",
    active: bool = True,
    notify: bool = True,
) -> Goal:
    return Goal(goal_id, user_id, metric, period, target, active, CREATED, CREATED, notify)


def user_with(goals, totals=None, preferences=None, zone="UTC") -> UserGoals:
    return UserGoals("u1", ZoneInfo(zone), preferences or NotificationPreferences("u1"), goals, totals or {})


def steps_on(day: date, value: float) -> dict:
    return {MetricKind.STEPS: {day: value}}


# --- the rule ---------------------------------------------------------------


def test_pace_counts_only_the_active_day_from_seven_to_ten():
    assert active_fraction(time(6, 59)) == 0
    assert active_fraction(time(7, 0)) == 0
    assert active_fraction(time(16, 0)) == pytest.approx(0.6)
    assert active_fraction(time(22, 0)) == 1
    assert active_fraction(time(23, 30)) == 1


def test_a_user_exactly_on_pace_is_not_nudged():
    # At 16:00, 60% of the active day has passed: 6,000 of 10,000 is on pace.
    assert nudges(user_with([goal()], steps_on(WEDNESDAY, 6_000)), WEDNESDAY, AT_16, NOW) == []


def test_a_gap_under_two_percent_of_the_target_is_not_worth_a_nudge():
    assert nudges(user_with([goal()], steps_on(WEDNESDAY, 5_801)), WEDNESDAY, AT_16, NOW) == []


def test_a_gap_of_two_percent_is_a_nudge_saying_by_how_much_and_what_closes_it():
    (nudge,) = nudges(user_with([goal()], steps_on(WEDNESDAY, 5_800)), WEDNESDAY, AT_16, NOW)
    assert nudge.kind is NotificationKind.BEHIND_GOAL
    assert nudge.goal_id == "g1"
    assert nudge.local_date == WEDNESDAY
    assert "5,800" in nudge.body and "6,000" in nudge.body and "200 behind" in nudge.body
    assert "brisk walk of 2 minutes" in nudge.body


def test_a_user_with_no_readings_is_behind_by_the_whole_pace():
    (nudge,) = nudges(user_with([goal()]), WEDNESDAY, AT_16, NOW)
    assert "6,000 behind" in nudge.body and "brisk walk of 60 minutes" in nudge.body


def test_a_goal_already_met_gets_no_nudge():
    assert nudges(user_with([goal()], steps_on(WEDNESDAY, 10_000)), WEDNESDAY, time(21, 0), NOW) == []


def test_a_user_without_goals_or_with_goals_off_gets_nothing():
    assert nudges(user_with([]), WEDNESDAY, AT_16, NOW) == []
    assert nudges(user_with([goal(active=False)]), WEDNESDAY, AT_16, NOW) == []
    assert nudges(user_with([goal(notify=False)]), WEDNESDAY, AT_16, NOW) == []


def test_a_user_who_turned_notifications_off_gets_no_nudge():
    off = NotificationPreferences("u1", enabled=False)
    assert nudges(user_with([goal()], preferences=off), WEDNESDAY, AT_16, NOW) == []


def test_no_nudge_inside_quiet_hours_even_across_midnight():
    evening = NotificationPreferences("u1", quiet_start=time(19, 0), quiet_end=time(7, 0))
    assert nudges(user_with([goal()], preferences=evening), WEDNESDAY, time(20, 0), NOW) == []
    assert len(nudges(user_with([goal()], preferences=evening), WEDNESDAY, AT_16, NOW)) == 1
    afternoon = NotificationPreferences("u1", quiet_start=time(13, 0), quiet_end=time(16, 0))
    # The end is not quiet any more.
    assert len(nudges(user_with([goal()], preferences=afternoon), WEDNESDAY, AT_16, NOW)) == 1


def test_at_most_three_nudges_go_out_the_goals_furthest_behind_first():
    goals = [
        goal(10_000, MetricKind.STEPS, goal_id="steps"),
        goal(2_000, MetricKind.CALORIES_BURNED, goal_id="kcal"),
        goal(8_000, MetricKind.DISTANCE, goal_id="distance"),
        goal(60, MetricKind.ACTIVE_MINUTES, goal_id="active"),
    ]
    totals = {
        MetricKind.STEPS: {WEDNESDAY: 5_000},  # 1,000 behind of 10,000: 10%
        MetricKind.CALORIES_BURNED: {WEDNESDAY: 0},  # 1,200 behind of 2,000: 60%
        MetricKind.DISTANCE: {WEDNESDAY: 2_800},  # 2,000 behind of 8,000: 25%
        MetricKind.ACTIVE_MINUTES: {WEDNESDAY: 30},  # 6 behind of 60: 10%
    }
    made = nudges(user_with(goals, totals), WEDNESDAY, AT_16, NOW)
    assert [n.goal_id for n in made] == ["kcal", "distance", "active"]
    assert "Walking 2.0 km (about 25 minutes)" in made[1].body
    assert "6 active minutes would close the gap" in made[2].body


def test_a_weekly_goal_is_paced_over_the_users_week_from_monday():
    weekly = goal(70_000, period=GoalPeriod.WEEKLY)
    # Wednesday 16:00: Monday and Tuesday done, 60% of Wednesday: 2.6 sevenths.
    expected, first = expected_by(weekly, WEDNESDAY, AT_16)
    assert first == date(2026, 11, 16)
    assert expected == pytest.approx(26_000)
    on_pace = {MetricKind.STEPS: {date(2026, 11, 16): 12_000, date(2026, 11, 17): 9_000, WEDNESDAY: 5_000}}
    assert nudges(user_with([weekly], on_pace), WEDNESDAY, AT_16, NOW) == []
    # Last Sunday's steps belong to last week.
    last_week = {**on_pace[MetricKind.STEPS], date(2026, 11, 15): 50_000, WEDNESDAY: 3_000}
    (nudge,) = nudges(user_with([weekly], {MetricKind.STEPS: last_week}), WEDNESDAY, AT_16, NOW)
    assert "this week" in nudge.body and "2,000 behind" in nudge.body


def test_evaluating_a_slot_twice_makes_the_same_key_and_id():
    first = nudges(user_with([goal()]), WEDNESDAY, AT_16, NOW)
    again = nudges(user_with([goal()], steps_on(WEDNESDAY, 100)), WEDNESDAY, AT_16, NOW + timedelta(minutes=5))
    assert [(n.idempotency_key, n.notification_id) for n in first] == [
        (n.idempotency_key, n.notification_id) for n in again
    ]
    other_slot = nudges(user_with([goal()]), WEDNESDAY, time(20, 0), NOW)
    assert other_slot[0].idempotency_key != first[0].idempotency_key


# --- slots in time zones ------------------------------------------------------


def test_slots_fall_at_local_times_in_each_zone():
    since = datetime(2026, 11, 18, 0, 0, tzinfo=UTC)
    until = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
    slots = (time(11, 0), time(16, 0), time(20, 0))
    # Kolkata is UTC+5:30: 11:00 there is 05:30 UTC.
    assert slot_instants(ZoneInfo("Asia/Kolkata"), slots, since, until) == [(WEDNESDAY, time(11, 0))]
    # Kiritimati is UTC+14: the window is 14:00 to 20:00 there.
    assert slot_instants(ZoneInfo("Pacific/Kiritimati"), slots, since, until) == [
        (WEDNESDAY, time(16, 0)),
        (WEDNESDAY, time(20, 0)),
    ]
    assert slot_instants(ZoneInfo("America/Los_Angeles"), slots, since, until) == [(date(2026, 11, 17), time(20, 0))]


def test_on_the_days_the_clocks_change_a_slot_happens_once_at_its_local_time():
    berlin = ZoneInfo("Europe/Berlin")
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)

    def utc(day, hour, minute=0):
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)

    whole = lambda day: (utc(day, 0) - timedelta(hours=3), utc(day, 23))  # noqa: E731
    # 11:00 is 10:00 UTC the day before spring forward, 09:00 UTC on the day.
    assert slot_instants(berlin, (time(11, 0),), utc(spring, 8, 59), utc(spring, 9, 0)) == [(spring, time(11, 0))]
    assert slot_instants(berlin, (time(11, 0),), utc(autumn, 9, 59), utc(autumn, 10, 0)) == [(autumn, time(11, 0))]
    # 02:30 does not exist on the spring day, and happens twice on the autumn day: once each.
    assert slot_instants(berlin, (time(2, 30),), *whole(spring)) == [(spring, time(2, 30))]
    assert slot_instants(berlin, (time(2, 30),), *whole(autumn)) == [(autumn, time(2, 30))]
    # The pace follows the wall clock, so an hour shorter day changes nothing at 11:00.
    assert active_fraction(time(11, 0)) == pytest.approx(4 / 15)


def test_configured_times_must_be_times_of_day():
    assert parse_clock_times("20:00, 11:00,16:00", "times") == (time(11), time(16), time(20))
    with pytest.raises(InvalidArgument, match="'25:00' is not a local time"):
        parse_clock_times("11:00,25:00", "times")


# --- the batch evaluator ----------------------------------------------------


class RecordingQueue(NotificationQueue):
    def __init__(self) -> None:
        self.sent = []

    def send(self, notifications) -> None:
        self.sent.extend(notifications)


def add_user(db: FakeAccountsDatabase, user_id: str, zone: str) -> None:
    with db() as uow:
        uow.users.add(
            User(user_id, f"user-{user_id}", Profile(time_zone=zone), CREATED), Credentials(user_id, b"x", CREATED)
        )
        uow.commit()


def add_goal(db: FakeAccountsDatabase, user_id: str, target: float = 10_000, **changes) -> None:
    with db() as uow:
        uow.goals.add(goal(target, goal_id=f"goal-{user_id}", user_id=user_id, **changes))
        uow.commit()


@pytest.fixture
def world():
    db, store, queue = FakeAccountsDatabase(), FakeMetricStore(), RecordingQueue()
    clock = FakeClock(datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    evaluator = GoalEvaluator(db, store, queue, clock, EvaluationSettings(page_size=2))
    return db, store, queue, evaluator


def test_a_run_nudges_the_users_of_zones_whose_slot_fell_due_in_pages(world):
    db, store, queue, evaluator = world
    for n in range(5):
        add_user(db, f"london{n}", "Europe/London")
        add_goal(db, f"london{n}")
    add_user(db, "tokyo", "Asia/Tokyo")
    add_goal(db, "tokyo")
    add_user(db, "walker", "Europe/London")
    add_goal(db, "walker")
    store.save_days("walker", MetricKind.STEPS, [DaySummary(WEDNESDAY, 7_000)])
    summary = evaluator.run_due(datetime(2026, 11, 18, 15, 59, tzinfo=UTC), datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    # 16:00 in London is due; Tokyo's 16:00 was hours ago and its 20:00 not yet (01:00 tomorrow there).
    assert sorted(n.user_id for n in queue.sent) == [f"london{n}" for n in range(5)]
    assert summary.users == 6 and summary.notifications == 5


def test_a_slot_already_past_is_not_evaluated_again_by_the_next_window(world):
    db, store, queue, evaluator = world
    add_user(db, "u1", "UTC")
    add_goal(db, "u1")
    evaluator.run_due(datetime(2026, 11, 18, 15, 30, tzinfo=UTC), datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    evaluator.run_due(datetime(2026, 11, 18, 16, 0, tzinfo=UTC), datetime(2026, 11, 18, 16, 30, tzinfo=UTC))
    assert len(queue.sent) == 1


def test_monday_morning_every_user_who_takes_notifications_hears_their_report_is_ready(world):
    db, store, queue, evaluator = world
    add_user(db, "walker", "America/New_York")
    add_user(db, "quiet", "America/New_York")
    with db() as uow:
        uow.preferences.put(NotificationPreferences("quiet", enabled=False))
        uow.commit()
    store.save_days("walker", MetricKind.STEPS, [DaySummary(date(2026, 11, 16), 8_000)])
    store.save_days("walker", MetricKind.STEPS, [DaySummary(date(2026, 11, 22), 4_500)])
    monday_8am_new_york = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    evaluator.run_due(monday_8am_new_york - timedelta(minutes=1), monday_8am_new_york)
    (notice,) = queue.sent
    assert notice.user_id == "walker" and notice.kind is NotificationKind.REPORT_READY
    assert "16 Nov to 22 Nov" in notice.body and "12,500 steps" in notice.body
    queue.sent.clear()
    tuesday = monday_8am_new_york + timedelta(days=1)
    evaluator.run_due(tuesday - timedelta(minutes=1), tuesday)
    assert queue.sent == []


# --- several evaluators sharing the work --------------------------------------------

SLOT_AT_16 = datetime(2026, 11, 18, 16, 0, tzinfo=UTC)
LONDON_AT_16 = EvaluationWork(SLOT, "Europe/London", WEDNESDAY, AT_16)


class Team:
    """Evaluators sharing one account database, its claims and one notification queue."""

    def __init__(self, users: int = 5, page_size: int = 2) -> None:
        self.db, self.store, self.queue = FakeAccountsDatabase(), FakeMetricStore(), RecordingQueue()
        self.clock = FakeClock(SLOT_AT_16)
        self.settings = EvaluationSettings(page_size=page_size, report_ready_at=None)
        for n in range(users):
            add_user(self.db, f"london{n}", "Europe/London")
            add_goal(self.db, f"london{n}")

    def claims(self, holder: str) -> WorkClaims:
        return WorkClaims(self.db, self.clock, timedelta(minutes=5), holder)

    def evaluator(self, holder: str, queue: NotificationQueue | None = None) -> GoalEvaluator:
        return GoalEvaluator(self.db, self.store, queue or self.queue, self.clock, self.settings, self.claims(holder))

    def nudged(self) -> list[str]:
        return sorted(n.user_id for n in self.queue.sent)


def test_a_slot_claimed_by_one_evaluator_is_not_evaluated_again_by_another():
    team = Team()
    window = (SLOT_AT_16 - timedelta(minutes=1), SLOT_AT_16)

    first = team.evaluator("e1").run_due(*window)
    second = team.evaluator("e2").run_due(*window)

    assert (first.users, second.users) == (5, 0)
    assert team.nudged() == [f"london{n}" for n in range(5)]


def test_a_slot_an_evaluator_left_unfinished_is_taken_over_once_its_lease_ran_out():
    team = Team()
    assert team.claims("stopped").take(LONDON_AT_16)  # and then the evaluator died
    survivor = team.evaluator("e2")

    assert survivor.run_due(SLOT_AT_16 - timedelta(minutes=1), SLOT_AT_16).users == 0
    team.clock.set(SLOT_AT_16 + timedelta(minutes=5, seconds=1))
    taken_over = survivor.run_due(SLOT_AT_16, team.clock())

    assert taken_over.users == 5
    assert team.nudged() == [f"london{n}" for n in range(5)]


def test_a_slot_left_unfinished_longer_than_retry_for_is_given_up_without_stale_nudges():
    team = Team()
    team.claims("stopped").take(LONDON_AT_16)
    team.clock.set(SLOT_AT_16 + team.settings.retry_for + timedelta(minutes=1))

    assert team.evaluator("e2").run_due(team.clock() - timedelta(minutes=1), team.clock()).users == 0
    assert team.nudged() == []
    # Given up for good: nobody takes it any more.
    assert not team.claims("e3").take(LONDON_AT_16)


class TakenOverAfterFirstPage(RecordingQueue):
    """The first send lasts longer than the lease, and another evaluator takes the slot over meanwhile."""

    def __init__(self, team: Team) -> None:
        super().__init__()
        self.team = team

    def send(self, notifications) -> None:
        super().send(notifications)
        if len(self.sent) == len(notifications):
            self.team.clock.set(self.team.clock() + timedelta(minutes=6))
            assert self.team.claims("e2").take(LONDON_AT_16)


def test_an_evaluator_whose_claim_was_taken_over_stops_after_its_page():
    team = Team(users=5, page_size=2)
    slow_queue = TakenOverAfterFirstPage(team)

    summary = team.evaluator("e1", slow_queue).run_due(SLOT_AT_16 - timedelta(minutes=1), SLOT_AT_16)

    assert summary.users == 2
    assert sorted(n.user_id for n in slow_queue.sent) == ["london0", "london1"]


class FailingOnce(FakeMetricStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def daily_totals(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the metric store went away")
        return super().daily_totals(*args, **kwargs)


def test_the_evaluator_whose_run_failed_redoes_its_own_claimed_slot_on_the_next_try():
    team = Team()
    team.store = FailingOnce()
    evaluator = team.evaluator("e1")
    window = (SLOT_AT_16 - timedelta(minutes=1), SLOT_AT_16)

    with pytest.raises(ConnectionError):
        evaluator.run_due(*window)
    # The next tick tries the same window again, and the claim is still its own.
    assert evaluator.run_due(*window).users == 5
    assert not team.claims("e2").take(LONDON_AT_16)


def test_evaluation_work_names_itself_by_a_key_that_reads_back():
    assert EvaluationWork.from_key(LONDON_AT_16.key) == LONDON_AT_16
    assert LONDON_AT_16.moment() == SLOT_AT_16
    for unknown in (
        "",
        "slot|Europe/London|2026-11-18",
        "later|UTC|2026-11-18|11:00",
        "slot|Mars/Olympus|2026-11-18|11:00",
    ):
        assert EvaluationWork.from_key(unknown) is None
