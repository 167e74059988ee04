"""Behind-goal nudges and the Monday report notice, end to end on both profiles.

The evaluator runs on the profile's real stores and queue (SQLite outbox, or
PostgreSQL + MongoDB + the Kafka topic) and the notifications reach the user
through the real dispatcher and server. Each test evaluates an explicit
window with GoalEvaluator.run_due, as the scheduler's tick does, so that it
knows which slots it asked for; tests/e2e/test_evaluation_schedule.py checks
the scheduler itself.
"""

from __future__ import annotations

import contextlib
import math
import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.type import timeofday_pb2

from fittrack.app.wiring import evaluation_schedule
from fittrack.app.worker_parts import build_evaluator
from fittrack.core.domain.evaluation import DEFAULT_SLOTS, slot_instants
from fittrack.core.services.evaluation import GoalEvaluator
from fittrack.generated.v1 import common_pb2, goal_pb2, notification_pb2
from tests.support import batch, eventually, reading, register_and_login, rpc_error, upload

STEPS = common_pb2.METRIC_KIND_STEPS
BEHIND = notification_pb2.NOTIFICATION_KIND_BEHIND_GOAL
REPORT_READY = notification_pb2.NOTIFICATION_KIND_REPORT_READY
# Zones no other test uses: the production profile's database is shared by a run's tests.
CHATHAM = "Pacific/Chatham"  # UTC+13:45, a quarter-hour offset
KATHMANDU = "Asia/Kathmandu"  # UTC+5:45
EUCLA = "Australia/Eucla"  # UTC+8:45


@contextlib.contextmanager
def evaluators(profile, server_config, clock, count: int):
    """`count` evaluators on the profile's real stores and notification queue, at the test's clock, built as the
    server and fittrack-evaluator build theirs: each with its own claims, so together they share the work."""
    if profile == "embedded":
        from fittrack.core.adapters.sqlite import SqliteDatabase
        from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
        from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
        from fittrack.core.adapters.sqlite_outbox import SqliteNotificationQueue

        db = SqliteDatabase(server_config.database_path)
        queue = SqliteNotificationQueue(db)
        store = SqliteMetricStore(db)
        schedules = [
            evaluation_schedule(
                server_config,
                lambda: SqliteUnitOfWork(db, read_only=True),
                store,
                queue,
                clock,
                write_uow=lambda: SqliteUnitOfWork(db),
            )
            for _ in range(count)
        ]
        yield tuple(schedule.evaluator for schedule in schedules)
        db.close()
        return
    parts = [build_evaluator(server_config, clock) for _ in range(count)]
    yield tuple(part.schedule.evaluator for part in parts)
    for part in parts:
        for close in reversed(part.closers):
            close()


@pytest.fixture
def evaluator(profile, server, server_config, clock):
    with evaluators(profile, server_config, clock, 1) as (one,):
        yield one


@pytest.fixture
def two_evaluators(profile, server, server_config, clock):
    """Two evaluators sharing the work through claims in the account database, as two processes would."""
    with evaluators(profile, server_config, clock, 2) as pair:
        yield pair


def next_slot(clock, zone_name: str, slots=DEFAULT_SLOTS) -> tuple[datetime, datetime]:
    """The UTC moment of the zone's next evaluation slot after now, and its local wall time."""
    zone = ZoneInfo(zone_name)
    now = clock()
    day, slot = slot_instants(zone, slots, now, now + timedelta(days=1))[0]
    local = datetime.combine(day, slot, zone)
    return local.astimezone(UTC), local


def at_slot(clock, zone_name: str) -> tuple[datetime, datetime]:
    """Move the test clock to the zone's next slot; returns the slot's UTC moment and local time."""
    moment, local = next_slot(clock, zone_name)
    clock.advance(moment - clock() + timedelta(seconds=1))
    return moment, local


def steps_goal(stubs, user, target=10_000, **options):
    request = goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=target, **options)
    return stubs.goals.CreateGoal(request, metadata=user.auth)


def walk(stubs, user, local: datetime, steps: int) -> None:
    """`steps` on the slot's local day, 100 a minute from 07:00."""
    start = int(local.replace(hour=7, minute=0, second=0, microsecond=0).timestamp())
    minutes = [min(100, steps - 100 * n) for n in range((steps + 99) // 100)]
    upload(stubs, user, batch([reading(STEPS, start + 60 * n, value) for n, value in enumerate(minutes)]))


def notifications_of(stubs, user, kind=None):
    page = stubs.notifications.ListNotifications(notification_pb2.ListNotificationsRequest(), metadata=user.auth)
    return [n for n in page.notifications if kind is None or n.kind == kind]


def test_a_user_behind_their_goal_at_a_slot_is_nudged_saying_by_how_much(stubs, evaluator, clock, new_username):
    # The clock moves first: access tokens issued before the jump would have expired.
    moment, local = at_slot(clock, CHATHAM)
    user = register_and_login(stubs, new_username("behind"), time_zone=CHATHAM)
    goal = steps_goal(stubs, user)
    walk(stubs, user, local, 1_000)
    # The persister is asynchronous: evaluate once the walk is stored.
    eventually(lambda: _today_steps(stubs, user), lambda total: total == 1_000)
    summary = evaluator.run_due(moment - timedelta(minutes=1), moment)
    assert summary.notifications >= 1
    (nudge,) = eventually(lambda: notifications_of(stubs, user, BEHIND), lambda found: len(found) == 1)
    pace = 10_000 * (local.hour - 7) / 15
    assert nudge.goal_id == goal.goal_id
    assert f"{pace:,.0f}" in nudge.body and f"{pace - 1_000:,.0f} behind" in nudge.body
    assert "A brisk walk of" in nudge.body


def test_only_users_behind_pace_who_want_notifications_are_nudged(stubs, evaluator, clock, new_username):
    moment, local = at_slot(clock, KATHMANDU)
    names = ("behind", "onpace", "silenced", "quiet", "off")
    users = {name: register_and_login(stubs, new_username(name), time_zone=KATHMANDU) for name in names}
    goals = {name: steps_goal(stubs, user) for name, user in users.items() if name != "silenced"}
    steps_goal(stubs, users["silenced"], notify=False)
    wall = local.timetz().replace(tzinfo=None)
    quiet_from = (datetime.combine(local.date(), wall) - timedelta(hours=1)).time()
    stubs.notifications.UpdateNotificationPreferences(
        notification_pb2.UpdateNotificationPreferencesRequest(
            quiet_start=timeofday_pb2.TimeOfDay(hours=quiet_from.hour, minutes=quiet_from.minute),
            quiet_end=timeofday_pb2.TimeOfDay(hours=(wall.hour + 1) % 24, minutes=wall.minute),
        ),
        metadata=users["quiet"].auth,
    )
    stubs.notifications.UpdateNotificationPreferences(
        notification_pb2.UpdateNotificationPreferencesRequest(enabled=False), metadata=users["off"].auth
    )
    walk(stubs, users["onpace"], local, math.ceil(10_000 * (local.hour - 7) / 15))
    eventually(lambda: _today_steps(stubs, users["onpace"]), bool)
    summary = evaluator.run_due(moment - timedelta(minutes=1), moment)
    # A user whose only goal is silenced is not even read; of the four others one is nudged.
    assert (summary.users, summary.notifications) == (4, 1)
    (nudge,) = eventually(lambda: notifications_of(stubs, users["behind"]), lambda found: len(found) == 1)
    assert nudge.goal_id == goals["behind"].goal_id


def test_two_evaluators_at_the_same_slot_share_it_and_nudge_each_user_once(stubs, two_evaluators, clock, new_username):
    moment, _ = at_slot(clock, EUCLA)
    users = [register_and_login(stubs, new_username(f"pair{n}"), time_zone=EUCLA) for n in range(3)]
    for user in users:
        steps_goal(stubs, user)
    summaries = []
    start = threading.Barrier(2)

    def evaluate(evaluator: GoalEvaluator) -> None:
        start.wait(timeout=10)
        summaries.append(evaluator.run_due(moment - timedelta(minutes=1), moment))

    runs = [threading.Thread(target=evaluate, args=(evaluator,)) for evaluator in two_evaluators]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)

    # One of them did the zone's slot, the other found it claimed. (Either may also have done another zone's
    # slot that falls on the same instant, for users of other tests: Chatham's is 4 hours from Eucla's.)
    assert sorted(EUCLA in summary.zones for summary in summaries) == [False, True]
    assert max(summary.users for summary in summaries if EUCLA in summary.zones) >= 3
    for user in users:
        eventually(lambda user=user: notifications_of(stubs, user, BEHIND), lambda found: len(found) == 1)


def test_the_monday_notice_says_last_weeks_report_is_ready(stubs, evaluator, clock, new_username):
    zone = ZoneInfo(CHATHAM)
    now_local = clock().astimezone(zone)
    monday = (now_local + timedelta(days=7 - now_local.weekday())).replace(hour=8, minute=0, second=0, microsecond=0)
    moment = monday.astimezone(UTC)
    clock.advance(moment - clock() + timedelta(seconds=1))
    user = register_and_login(stubs, new_username("monday"), time_zone=CHATHAM)
    evaluator.run_due(moment - timedelta(minutes=1), moment)
    (notice,) = eventually(lambda: notifications_of(stubs, user, REPORT_READY), lambda found: len(found) == 1)
    last_monday = monday - timedelta(days=7)
    assert f"{last_monday:%d %b} to {monday - timedelta(days=1):%d %b}" in notice.body


def test_preferences_start_on_and_change_only_where_asked(stubs, alice):
    get = lambda: stubs.notifications.GetNotificationPreferences(  # noqa: E731
        notification_pb2.GetNotificationPreferencesRequest(), metadata=alice.auth
    )
    assert get().enabled and not get().HasField("quiet_start")
    update = lambda **fields: stubs.notifications.UpdateNotificationPreferences(  # noqa: E731
        notification_pb2.UpdateNotificationPreferencesRequest(**fields), metadata=alice.auth
    )
    changed = update(quiet_start=timeofday_pb2.TimeOfDay(hours=22), quiet_end=timeofday_pb2.TimeOfDay(hours=7))
    assert changed.enabled and (changed.quiet_start.hours, changed.quiet_end.hours) == (22, 7)
    off = update(enabled=False)
    assert not off.enabled and off.quiet_start.hours == 22
    cleared = update(clear_quiet_hours=True)
    assert not cleared.HasField("quiet_start") and get() == cleared


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"quiet_start": timeofday_pb2.TimeOfDay(hours=22)}, "need both quiet_start and quiet_end"),
        (
            {"quiet_start": timeofday_pb2.TimeOfDay(hours=22, minutes=60), "quiet_end": timeofday_pb2.TimeOfDay()},
            "not a time of day",
        ),
        ({"quiet_start": timeofday_pb2.TimeOfDay(hours=6), "quiet_end": timeofday_pb2.TimeOfDay(hours=6)}, "empty"),
        ({}, "nothing to change"),
    ],
)
def test_bad_preferences_are_refused_saying_what_to_fix_and_change_nothing(stubs, alice, fields, message):
    error = rpc_error(
        lambda: stubs.notifications.UpdateNotificationPreferences(
            notification_pb2.UpdateNotificationPreferencesRequest(**fields), metadata=alice.auth
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details()
    stored = stubs.notifications.GetNotificationPreferences(
        notification_pb2.GetNotificationPreferencesRequest(), metadata=alice.auth
    )
    assert stored.enabled and not stored.HasField("quiet_start")


def test_a_goals_notifications_can_be_turned_off_and_on(stubs, alice):
    goal = steps_goal(stubs, alice)
    assert goal.notify
    silenced = stubs.goals.UpdateGoal(
        goal_pb2.UpdateGoalRequest(goal_id=goal.goal_id, notify=False), metadata=alice.auth
    )
    assert not silenced.notify and silenced.target == goal.target
    (listed,) = stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(), metadata=alice.auth).goals
    assert not listed.notify


def _today_steps(stubs, user) -> float:
    from tests.support import view_today

    return view_today(stubs, user, STEPS).total


# The slot times the pace arithmetic above assumes.
assert (time(11), time(16), time(20)) == DEFAULT_SLOTS
