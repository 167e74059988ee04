"""A dispatcher process killed in the middle of a push, on the production profile (real Kafka and PostgreSQL):
the user still sees the notification once, and every POST of it carries the same Idempotency-Key."""

from __future__ import annotations

import random

import pytest

from fittrack.app.config import Config
from fittrack.generated.v1 import common_pb2, goal_pb2, notification_pb2
from tests.production import ProductionStack
from tests.support import batch, eventually, local_midnight, reading, register_and_login, server_settings, upload
from tests.webhook import Webhook

STEPS = common_pb2.METRIC_KIND_STEPS
pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def stack():
    stack = ProductionStack.create("crash")
    stack.start_persister()
    yield stack
    stack.destroy()


@pytest.fixture
def server_config(stack, tmp_path):
    """Production only, on this module's own slice; `server` and `stubs` come from tests/conftest.py."""
    return Config(**server_settings(tmp_path, **stack.config_values()))


def meet_a_goal(stubs, user, clock, period, minute: int) -> str:
    request = goal_pb2.CreateGoalRequest(metric=STEPS, period=period, target=200)
    goal = stubs.goals.CreateGoal(request, metadata=user.auth)
    upload(stubs, user, batch([reading(STEPS, local_midnight(clock, "Europe/Paris") + 60 * minute, 250)]))
    return goal.goal_id


def listed(stubs, user):
    request = notification_pb2.ListNotificationsRequest()
    return stubs.notifications.ListNotifications(request, metadata=user.auth).notifications


def test_a_dispatcher_killed_mid_push_shows_the_notification_once_and_posts_it_under_one_key(
    stack, stubs, clock, webhook
):
    user = register_and_login(stubs, f"crash{random.randrange(10**9)}", time_zone="Europe/Paris")
    stream = stubs.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=user.auth, timeout=120
    )
    stream.initial_metadata()  # subscribed from here on
    settings = {"FITTRACK_WEBHOOK_URL": webhook.url, "FITTRACK_PUSH_TIMEOUT_SECONDS": "5"}
    webhook.hold_next()
    doomed = stack.start_dispatcher(**settings)
    try:
        daily = meet_a_goal(stubs, user, clock, common_pb2.GOAL_PERIOD_DAILY, minute=10)
        # The dispatcher has stored the notification and waits for the webhook's answer: kill it there.
        eventually(lambda: webhook.held.is_set(), bool, timeout=60)
        doomed.kill()
        doomed.wait(timeout=30)
    finally:
        webhook.release()
    stack.start_dispatcher(**settings)

    # Its successor is handed the same record again (no offset was committed), and retries the push
    # once the dead dispatcher's lease on it has run out.
    posts = eventually(lambda: webhook.received(user.user_id), lambda found: len(found) >= 2, timeout=120)
    (notification,) = eventually(lambda: listed(stubs, user), lambda found: len(found) == 1)
    assert notification.goal_id == daily
    assert {post.key for post in posts} == {notification.notification_id}

    # The stream too shows it once: a later notification of the same user comes after any second copy.
    weekly = meet_a_goal(stubs, user, clock, common_pb2.GOAL_PERIOD_WEEKLY, minute=11)
    try:
        first, second = next(stream), next(stream)
    finally:
        stream.cancel()
    assert [first.notification_id, second.goal_id] == [notification.notification_id, weekly]
    assert [n.goal_id for n in listed(stubs, user)].count(daily) == 1
