"""Applying accepted batches: idempotent totals, merged sources, goal-met notifications."""

from datetime import UTC, date, datetime, timedelta

import pytest

from fittrack.core.domain.goals import GoalPeriod
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import NotificationKind
from tests.unit.fakes import PASSWORD, FakeApp, fake_app

STEPS, HEART = MetricKind.STEPS, MetricKind.HEART_RATE
# Wednesday 10 June 2026, 18:00 in Paris.
NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
TODAY = date(2026, 6, 10)


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOW)


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


MORNING = minute_of(datetime(2026, 6, 10, 7, 0, tzinfo=UTC))  # 09:00 in Paris


def batch(user_id: str, source: str, readings, day: date = TODAY, sequence: int = 0) -> AcceptedBatch:
    """readings: (metric, minute, value)."""
    placed = tuple(PlacedReading(metric, minute, value, day) for metric, minute, value in readings)
    return AcceptedBatch(user_id, source, sequence, placed)


def steps_on(app: FakeApp, user_id: str, day: date = TODAY) -> float:
    days = app.store.days(user_id, STEPS, day, day)
    return days[0].value if days else 0.0


def walk(user_id: str, source: str, minutes: int, per_minute: float, start: int = MORNING) -> AcceptedBatch:
    return batch(user_id, source, [(STEPS, start + i, per_minute) for i in range(minutes)])


def test_applying_a_batch_stores_the_days_total(app, alice):
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    assert steps_on(app, alice.user_id) == 1000


def test_applying_the_same_batch_twice_leaves_the_same_totals(app, alice):
    batches = [walk(alice.user_id, "watch", 10, 100), batch(alice.user_id, "watch", [(HEART, MORNING, 90)])]
    app.persister.apply(batches)
    once = (app.store.days(alice.user_id, STEPS, TODAY, TODAY), app.store.days(alice.user_id, HEART, TODAY, TODAY))
    app.persister.apply(batches)
    twice = (app.store.days(alice.user_id, STEPS, TODAY, TODAY), app.store.days(alice.user_id, HEART, TODAY, TODAY))
    assert twice == once
    assert once[0][0].value == 1000


def test_a_resent_minute_replaces_its_value_instead_of_adding_to_it(app, alice):
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, MORNING, 40)])])
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, MORNING, 60)])])
    assert steps_on(app, alice.user_id) == 60


def test_a_phone_and_a_watch_counting_the_same_minutes_count_them_once(app, alice):
    app.persister.apply([walk(alice.user_id, "watch", 10, 100), walk(alice.user_id, "phone", 10, 90)])
    assert steps_on(app, alice.user_id) == 1000


def test_a_second_source_arriving_later_is_merged_with_the_first(app, alice):
    app.persister.apply([walk(alice.user_id, "phone", 10, 100)])
    app.persister.apply([walk(alice.user_id, "watch", 5, 120, start=MORNING + 8)])
    # Minutes 0-7 from the phone (800), minutes 8-9 from the watch (240), 10-12 from the watch (360).
    assert steps_on(app, alice.user_id) == 800 + 240 + 360


def test_heart_rate_from_two_sources_is_averaged_per_minute(app, alice):
    app.persister.apply(
        [
            batch(alice.user_id, "watch", [(HEART, MORNING, 100), (HEART, MORNING + 1, 80)]),
            batch(alice.user_id, "strap", [(HEART, MORNING, 120)]),
        ]
    )
    (day,) = app.store.days(alice.user_id, HEART, TODAY, TODAY)
    assert (day.value, day.min, day.max, day.minutes) == (95.0, 80.0, 110.0, 2)


def test_a_resent_minute_stays_on_the_day_it_was_first_placed_on(app, alice):
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, MORNING, 50)], day=TODAY)])
    # After a time-zone change the same minute would be placed on another day.
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, MORNING, 70)], day=TODAY - timedelta(days=1))])
    assert steps_on(app, alice.user_id, TODAY) == 70
    assert app.store.days(alice.user_id, STEPS, TODAY - timedelta(days=1), TODAY - timedelta(days=1)) == []


def test_batches_of_different_users_do_not_mix(app, alice):
    bob = app.sign_up("bob")
    app.persister.apply([walk(alice.user_id, "watch", 10, 100), walk(bob.user_id, "watch", 3, 100)])
    assert steps_on(app, alice.user_id) == 1000
    assert steps_on(app, bob.user_id) == 300


# --- goal-met notifications ----------------------------------------------------


def test_meeting_a_daily_goal_creates_one_notification_and_delivers_it(app, alice):
    goal = app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    (stored,) = app.database.notifications_of(alice.user_id)
    assert stored.kind is NotificationKind.GOAL_MET
    assert stored.goal_id == goal.goal_id
    assert "1,000 steps today" in stored.body
    assert app.sink.delivered == [stored]


def test_falling_short_of_a_goal_notifies_nobody(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1001)
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    assert app.database.notifications_of(alice.user_id) == []
    assert app.sink.delivered == []


def test_a_goal_met_notification_is_created_once_even_when_the_batch_is_applied_again(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    batches = [walk(alice.user_id, "watch", 10, 100)]
    app.persister.apply(batches)
    app.persister.apply(batches)
    assert len(app.database.notifications_of(alice.user_id)) == 1
    assert len(app.sink.delivered) == 1


def test_more_steps_after_meeting_a_goal_do_not_notify_again(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    app.persister.apply([walk(alice.user_id, "watch", 10, 100, start=MORNING + 60)])
    assert len(app.database.notifications_of(alice.user_id)) == 1
    assert len(app.sink.delivered) == 1


def test_the_same_goal_met_again_the_next_day_notifies_again(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    app.clock.advance(timedelta(days=1))
    tomorrow = TODAY + timedelta(days=1)
    readings = [(STEPS, MORNING + 1440 + i, 100) for i in range(10)]
    app.persister.apply([batch(alice.user_id, "watch", readings, tomorrow)])
    assert len(app.database.notifications_of(alice.user_id)) == 2
    assert len(app.sink.delivered) == 2


def test_a_weekly_goal_is_met_by_the_sum_of_the_week(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.WEEKLY, 1500)
    monday = date(2026, 6, 8)
    monday_minute = minute_of(datetime(2026, 6, 8, 7, 0, tzinfo=UTC))
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, monday_minute + i, 100) for i in range(10)], monday)])
    assert app.sink.delivered == []
    app.persister.apply([walk(alice.user_id, "watch", 5, 100)])
    (notification,) = app.sink.delivered
    assert "this week" in notification.body


def test_readings_of_a_past_period_do_not_congratulate_the_user(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    last_month = date(2026, 5, 10)
    old_minute = minute_of(datetime(2026, 5, 10, 7, 0, tzinfo=UTC))
    app.persister.apply([batch(alice.user_id, "watch", [(STEPS, old_minute + i, 500) for i in range(10)], last_month)])
    assert steps_on(app, alice.user_id, last_month) == 5000
    assert app.database.notifications_of(alice.user_id) == []
    assert app.sink.delivered == []


def test_a_paused_goal_does_not_notify(app, alice):
    goal = app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.goals.update(alice, goal.goal_id, None, False)
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    assert app.sink.delivered == []


def test_readings_of_another_metric_do_not_evaluate_a_steps_goal(app, alice):
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.persister.apply([batch(alice.user_id, "watch", [(HEART, MORNING, 80)])])
    assert app.sink.delivered == []


# --- deleted users -------------------------------------------------------------


def test_readings_for_a_deleted_user_are_applied_without_error(app, alice):
    in_flight = [walk(alice.user_id, "watch", 10, 100)]
    app.goals.create(alice, STEPS, GoalPeriod.DAILY, 100)
    app.accounts.delete_account(alice, PASSWORD)
    app.persister.apply(in_flight)  # must not raise: the worker would retry it forever
    assert app.sink.delivered == []
    assert app.database.notifications_of(alice.user_id) == []


def test_readings_for_a_deleted_user_are_not_stored(app, alice):
    in_flight = [walk(alice.user_id, "watch", 10, 100)]
    app.accounts.delete_account(alice, PASSWORD)
    app.persister.apply(in_flight)
    assert not app.store.holds_anything_of(alice.user_id)


# --- end to end through the ingest service --------------------------------------


def test_an_upload_from_a_device_reaches_the_days_total(app, alice):
    start = int(datetime(2026, 6, 10, 7, 0, tzinfo=UTC).timestamp())
    app.upload(alice, [(STEPS, start + 60 * i + 17, 50) for i in range(4)])
    assert steps_on(app, alice.user_id) == 200


def test_a_met_goal_travels_through_the_notification_queue_and_is_queued_once(app, alice):
    goal = app.goals.create(alice, STEPS, GoalPeriod.DAILY, 1000)
    app.queue.dispatcher = None  # only the queue: nothing is stored until a dispatcher takes it
    app.persister.apply([walk(alice.user_id, "watch", 10, 100)])
    app.persister.apply([walk(alice.user_id, "watch", 10, 100, start=MORNING + 60)])
    (sent,) = app.queue.sent
    assert (sent.kind, sent.goal_id) == (NotificationKind.GOAL_MET, goal.goal_id)
    assert app.database.notifications_of(alice.user_id) == []
