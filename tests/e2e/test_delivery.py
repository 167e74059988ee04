"""Notification delivery end to end, on both profiles: stored and listed once, live on open streams, and
POSTed to a real webhook receiver, with retries, dead letters and their replay through `fittrack-admin`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fittrack.app.config import Config
from fittrack.generated.v1 import common_pb2, goal_pb2, notification_pb2
from tests.production import ROOT, ProductionStack
from tests.support import batch, eventually, local_midnight, reading, server_settings, upload
from tests.webhook import Webhook

STEPS = common_pb2.METRIC_KIND_STEPS
GOAL_MET = notification_pb2.NOTIFICATION_KIND_GOAL_MET
# Small backoff so that three attempts take about a second.
PUSH_SETTINGS = {
    "push_max_attempts": 3,
    "push_backoff_base_seconds": 0.2,
    "push_backoff_max_seconds": 0.5,
    "push_timeout_seconds": 5.0,
}


@pytest.fixture(scope="module")
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def delivery_stack(webhook):
    """This module's own production slice, whose dispatcher pushes to the module's webhook."""
    stack = ProductionStack.create("dlv")
    stack.start_persister()
    stack.start_dispatcher(
        FITTRACK_WEBHOOK_URL=webhook.url, **{f"FITTRACK_{k.upper()}": str(v) for k, v in PUSH_SETTINGS.items()}
    )
    yield stack
    stack.destroy()


@pytest.fixture
def server_config(profile, tmp_path, request, webhook) -> Config:
    """The profile's server; embedded, its in-process dispatcher pushes to the module's webhook."""
    common = server_settings(tmp_path, webhook_url=webhook.url, **PUSH_SETTINGS)
    if profile == "embedded":
        return Config(**common)
    return Config(**common, **request.getfixturevalue("delivery_stack").config_values())


@pytest.fixture
def admin(profile, server_config, request):
    """Runs `fittrack-admin` (as `python -m fittrack.app.admin`) with the environment of the server's profile."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FITTRACK_")}
    if profile == "embedded":
        env.update(FITTRACK_PROFILE="embedded", FITTRACK_DATA_DIR=str(server_config.data_dir))
    else:
        env.update(request.getfixturevalue("delivery_stack").env)

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "fittrack.app.admin", *args]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"fittrack-admin {' '.join(args)} failed:\n{result.stderr}"
        return result

    return run


def meet_a_goal(stubs, user, clock, period=common_pb2.GOAL_PERIOD_DAILY, steps: int = 250):
    request = goal_pb2.CreateGoalRequest(metric=STEPS, period=period, target=200)
    goal = stubs.goals.CreateGoal(request, metadata=user.auth)
    start = local_midnight(clock, "Europe/Paris") + 600
    upload(stubs, user, batch([reading(STEPS, start + 60 * period, steps)]))
    return goal


def listed(stubs, user):
    request = notification_pb2.ListNotificationsRequest()
    return stubs.notifications.ListNotifications(request, metadata=user.auth).notifications


def dead_letters(admin) -> dict[str, dict]:
    letters = json.loads(admin("dead-letters", "list", "--json").stdout)
    return {letter["notification_id"]: letter for letter in letters}


def test_a_met_goal_is_listed_streamed_and_posted_to_the_webhook_once(stubs, alice, clock, webhook):
    stream = stubs.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=alice.auth, timeout=30
    )
    stream.initial_metadata()  # subscribed from here on
    try:
        goal = meet_a_goal(stubs, alice, clock)
        live = next(stream)
    finally:
        stream.cancel()
    assert (live.kind, live.goal_id) == (GOAL_MET, goal.goal_id)
    shown = eventually(lambda: listed(stubs, alice), lambda found: len(found) >= 1)
    assert [n.notification_id for n in shown] == [live.notification_id]
    (post,) = eventually(lambda: webhook.received(alice.user_id), lambda posts: len(posts) >= 1, timeout=30)
    assert post.key == live.notification_id
    assert post.headers["Content-Type"] == "application/json"
    assert post.payload["kind"] == "GOAL_MET" and post.payload["goal_id"] == goal.goal_id
    assert post.payload["title"] == live.title and post.payload["body"] == live.body

    # A later notification of the same user is handled after this one (in order, per user), so once its
    # POST is in, a second POST of the first, had there been one, would be in too.
    weekly = meet_a_goal(stubs, alice, clock, common_pb2.GOAL_PERIOD_WEEKLY, steps=1)
    eventually(
        lambda: webhook.received(alice.user_id),
        lambda posts: any(p.payload["goal_id"] == weekly.goal_id for p in posts),
        timeout=30,
    )
    assert [p.key for p in webhook.received(alice.user_id)].count(live.notification_id) == 1
    assert [n.goal_id for n in listed(stubs, alice)].count(goal.goal_id) == 1


def test_a_webhook_that_fails_twice_gets_the_notification_on_the_third_attempt(stubs, alice, clock, webhook):
    webhook.answer(alice.user_id, 503, 503)
    meet_a_goal(stubs, alice, clock)
    posts = eventually(
        lambda: webhook.received(alice.user_id), lambda found: [p.status for p in found] == [503, 503, 200], timeout=30
    )
    (notification,) = eventually(lambda: listed(stubs, alice), lambda found: len(found) == 1)
    assert {p.key for p in posts} == {notification.notification_id}


def test_a_push_that_always_fails_is_a_dead_letter_until_replayed_after_the_webhook_recovers(
    stubs, alice, clock, webhook, admin, profile
):
    webhook.fail(alice.user_id, 503)
    meet_a_goal(stubs, alice, clock)
    (notification,) = eventually(lambda: listed(stubs, alice), lambda found: len(found) == 1)
    letter = eventually(lambda: dead_letters(admin).get(notification.notification_id), bool, timeout=30)
    assert (letter["state"], letter["attempts"], letter["user_id"]) == ("dead", 3, alice.user_id)
    assert "503" in letter["last_error"]
    assert notification.notification_id in admin("dead-letters", "list").stdout
    assert [p.status for p in webhook.received(alice.user_id)] == [503, 503, 503]

    webhook.recover(alice.user_id)
    replay = admin("dead-letters", "replay", notification.notification_id)
    assert notification.notification_id in replay.stdout
    posts = eventually(lambda: webhook.received(alice.user_id), lambda found: found[-1].status == 200, timeout=30)
    assert [p.status for p in posts] == [503, 503, 503, 200]
    assert {p.key for p in posts} == {notification.notification_id}
    # Replayed: no longer dead. Production lists it still, from the dead-letter topic, as since delivered.
    after = eventually(
        lambda: dead_letters(admin).get(notification.notification_id, {"state": "not listed"}),
        lambda found: found["state"] != "pending",
    )
    assert after["state"] == ("not listed" if profile == "embedded" else "delivered")
    assert len(listed(stubs, alice)) == 1
