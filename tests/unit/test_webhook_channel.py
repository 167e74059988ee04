"""The webhook push channel against a real HTTP receiver on a loopback port."""

import socket
from datetime import UTC, datetime

import pytest

from fittrack.core.adapters.push import WebhookChannel
from fittrack.core.domain.delivery import PushOutcome
from fittrack.core.domain.notifications import Notification, NotificationKind
from tests.support import eventually
from tests.webhook import Webhook

NOTIFICATION = Notification(
    "0123456789abcdef0123456789abcdef",
    "user-1",
    NotificationKind.GOAL_MET,
    "Goal reached: steps",
    "You reached 10,000 steps today.",
    datetime(2026, 6, 10, 12, 0, tzinfo=UTC),
    "goal-met:g1:2026-06-10",
    "g1",
)


@pytest.fixture
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.close()


def test_a_push_posts_the_notification_as_json_with_its_id_as_idempotency_key(webhook):
    result = WebhookChannel(webhook.url, 5).push(NOTIFICATION)
    assert result.outcome is PushOutcome.DELIVERED
    (received,) = webhook.received()
    assert received.path == "/hooks/fittrack"
    assert received.headers["Content-Type"] == "application/json"
    assert received.key == NOTIFICATION.notification_id
    assert received.payload == {
        "notification_id": NOTIFICATION.notification_id,
        "user_id": "user-1",
        "kind": "GOAL_MET",
        "title": "Goal reached: steps",
        "body": "You reached 10,000 steps today.",
        "goal_id": "g1",
        "created_at": "2026-06-10T12:00:00+00:00",
    }


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_receiver_that_is_down_slow_or_busy_is_tried_again(webhook, status):
    webhook.answer("user-1", status)
    result = WebhookChannel(webhook.url, 5).push(NOTIFICATION)
    assert result.outcome is PushOutcome.RETRY
    assert str(status) in result.detail


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_a_receiver_that_refuses_the_push_is_not_tried_again(webhook, status):
    webhook.answer("user-1", status)
    result = WebhookChannel(webhook.url, 5).push(NOTIFICATION)
    assert result.outcome is PushOutcome.PERMANENT
    assert f"HTTP {status}" in result.detail
    assert len(webhook.received()) == 1


def test_a_receiver_nobody_listens_on_is_tried_again():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = WebhookChannel(f"http://127.0.0.1:{port}/hook", 2).push(NOTIFICATION)
    assert result.outcome is PushOutcome.RETRY
    assert "unreachable" in result.detail


def test_a_receiver_that_does_not_answer_in_time_is_tried_again(webhook):
    webhook.hold_next()
    try:
        result = WebhookChannel(webhook.url, 0.3).push(NOTIFICATION)
    finally:
        webhook.release()
    assert result.outcome is PushOutcome.RETRY
    assert eventually(lambda: webhook.held.is_set(), bool)


def test_credentials_in_the_webhook_url_are_sent_as_basic_authorization_and_never_in_a_failure(webhook):
    host_port = webhook.url.split("//", 1)[1].split("/", 1)[0]
    url = f"http://relay:s3cret-pass@{host_port}/hooks/fittrack?key=k3y-in-query"

    delivered = WebhookChannel(url, 5).push(NOTIFICATION)
    webhook.answer("user-1", 503)
    refused = WebhookChannel(url, 5).push(NOTIFICATION)

    assert delivered.outcome is PushOutcome.DELIVERED
    (first, _) = webhook.received()
    assert first.headers["Authorization"] == "Basic cmVsYXk6czNjcmV0LXBhc3M="  # relay:s3cret-pass
    assert first.path == "/hooks/fittrack?key=k3y-in-query"
    assert "s3cret" not in refused.detail and "k3y" not in refused.detail
    assert "s3cret" not in repr(WebhookChannel(url, 5))


def test_an_unreachable_webhook_with_a_secret_in_its_url_is_reported_without_the_secret():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://relay:s3cret-pass@127.0.0.1:{port}/hooks/t0ken-path"

    result = WebhookChannel(url, 2).push(NOTIFICATION)

    assert result.outcome is PushOutcome.RETRY
    assert "s3cret" not in result.detail and "t0ken" not in result.detail
