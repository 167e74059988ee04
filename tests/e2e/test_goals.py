"""Goals over the real server, and the notification a met goal brings."""

import grpc
import pytest

from fittrack.generated.v1 import common_pb2, goal_pb2, notification_pb2
from tests.support import batch, eventually, local_midnight, reading, rpc_error, upload

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS
DAILY = common_pb2.GOAL_PERIOD_DAILY
WEEKLY = common_pb2.GOAL_PERIOD_WEEKLY


def create(stubs, user, metric=STEPS, period=DAILY, target=10_000):
    return stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=metric, period=period, target=target), metadata=user.auth
    )


def test_a_created_goal_is_listed_and_can_be_changed_and_deleted(stubs, alice):
    daily = create(stubs, alice)
    weekly = create(stubs, alice, metric=common_pb2.METRIC_KIND_CALORIES_BURNED, period=WEEKLY, target=14_000)
    listed = stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(), metadata=alice.auth).goals
    assert [g.goal_id for g in listed] == [daily.goal_id, weekly.goal_id]
    assert listed[0].active and listed[0].target == 10_000

    updated = stubs.goals.UpdateGoal(
        goal_pb2.UpdateGoalRequest(goal_id=daily.goal_id, target=8000), metadata=alice.auth
    )
    assert updated.target == 8000
    paused = stubs.goals.UpdateGoal(
        goal_pb2.UpdateGoalRequest(goal_id=daily.goal_id, active=False), metadata=alice.auth
    )
    assert not paused.active and paused.target == 8000
    assert [g.goal_id for g in stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(), metadata=alice.auth).goals] == [
        weekly.goal_id
    ]
    everything = stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(include_inactive=True), metadata=alice.auth).goals
    assert len(everything) == 2

    stubs.goals.DeleteGoal(goal_pb2.DeleteGoalRequest(goal_id=daily.goal_id), metadata=alice.auth)
    everything = stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(include_inactive=True), metadata=alice.auth).goals
    assert [g.goal_id for g in everything] == [weekly.goal_id]


def test_a_second_goal_for_the_same_metric_and_period_is_refused(stubs, alice):
    create(stubs, alice)
    error = rpc_error(lambda: create(stubs, alice, target=5000))
    assert error.code() == Code.ALREADY_EXISTS
    assert "update it" in error.details()
    assert create(stubs, alice, period=WEEKLY, target=50_000).period == WEEKLY


@pytest.mark.parametrize(
    ("metric", "period", "target", "complaint"),
    [
        (common_pb2.METRIC_KIND_HEART_RATE, DAILY, 100, "cannot have a goal"),
        (0, DAILY, 100, "unknown metric kind"),
        (STEPS, 0, 100, "unknown goal period"),
        (STEPS, DAILY, 0, "greater than 0"),
        (STEPS, DAILY, -5, "greater than 0"),
        (STEPS, DAILY, 10_000_000, "beyond"),
    ],
)
def test_an_impossible_goal_is_refused_and_nothing_is_stored(stubs, alice, metric, period, target, complaint):
    error = rpc_error(lambda: create(stubs, alice, metric=metric, period=period, target=target))
    assert error.code() == Code.INVALID_ARGUMENT
    assert complaint in error.details()
    assert not stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(include_inactive=True), metadata=alice.auth).goals


def test_a_goal_over_the_limit_is_refused_quoting_the_target_as_sent_not_rounded(stubs, alice):
    error = rpc_error(lambda: create(stubs, alice, metric=STEPS, period=WEEKLY, target=1_400_001))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (
        "a weekly steps target of 1,400,001 steps is beyond what a person can do; at most 1,400,000 steps"
    )


def test_another_users_goal_cannot_be_seen_changed_or_deleted(stubs, alice, bob):
    goal = create(stubs, alice)
    attempts = [
        lambda: stubs.goals.UpdateGoal(goal_pb2.UpdateGoalRequest(goal_id=goal.goal_id, target=1), metadata=bob.auth),
        lambda: stubs.goals.DeleteGoal(goal_pb2.DeleteGoalRequest(goal_id=goal.goal_id), metadata=bob.auth),
        lambda: stubs.goals.GetGoalProgress(goal_pb2.GetGoalProgressRequest(goal_id=goal.goal_id), metadata=bob.auth),
    ]
    for attempt in attempts:
        assert rpc_error(attempt).code() == Code.NOT_FOUND
    (still,) = stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(), metadata=alice.auth).goals
    assert still.target == 10_000
    assert not stubs.goals.ListGoals(goal_pb2.ListGoalsRequest(), metadata=bob.auth).goals


def test_an_unknown_goal_is_not_found_and_an_empty_update_is_refused(stubs, alice):
    missing = rpc_error(
        lambda: stubs.goals.DeleteGoal(goal_pb2.DeleteGoalRequest(goal_id="no-such-goal"), metadata=alice.auth)
    )
    assert missing.code() == Code.NOT_FOUND
    goal = create(stubs, alice)
    empty = rpc_error(
        lambda: stubs.goals.UpdateGoal(goal_pb2.UpdateGoalRequest(goal_id=goal.goal_id), metadata=alice.auth)
    )
    assert empty.code() == Code.INVALID_ARGUMENT


def test_goal_progress_counts_todays_readings(stubs, alice, clock):
    goal = create(stubs, alice, target=1000)
    start = local_midnight(clock, "Europe/Paris") + 600
    upload(stubs, alice, batch([reading(STEPS, start - 60 * i, 100) for i in range(4)]))
    progress = eventually(
        lambda: stubs.goals.GetGoalProgress(goal_pb2.GetGoalProgressRequest(goal_id=goal.goal_id), metadata=alice.auth),
        lambda p: p.current == 400,
    )
    assert (progress.fraction, progress.remaining, progress.met) == (0.4, 600, False)
    assert progress.period_start == progress.period_end
    assert 0 <= progress.expected_by_now <= 1000


def test_meeting_a_goal_brings_one_notification_live_and_in_the_list(stubs, alice, clock):
    goal = create(stubs, alice, target=200)
    stream = stubs.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=alice.auth, timeout=20
    )
    stream.initial_metadata()  # subscribed from here on
    start = local_midnight(clock, "Europe/Paris") + 600
    try:
        upload(stubs, alice, batch([reading(STEPS, start, 150)]))
        upload(stubs, alice, batch([reading(STEPS, start - 60, 100)]))
        upload(stubs, alice, batch([reading(STEPS, start - 120, 100)]))
        live = next(stream)
    finally:
        stream.cancel()
    assert live.kind == notification_pb2.NOTIFICATION_KIND_GOAL_MET
    assert live.goal_id == goal.goal_id
    listed = eventually(
        lambda: stubs.notifications.ListNotifications(notification_pb2.ListNotificationsRequest(), metadata=alice.auth),
        lambda page: len(page.notifications) >= 1,
    )
    assert [n.notification_id for n in listed.notifications] == [live.notification_id]
    assert "200" in live.body
