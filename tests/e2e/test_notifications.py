"""Listing and marking notifications over the real server."""

import grpc

from fittrack.generated.v1 import common_pb2, goal_pb2, notification_pb2
from tests.support import batch, eventually, local_midnight, reading, rpc_error, upload

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS


def list_page(stubs, user, **options):
    return stubs.notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(**options), metadata=user.auth
    )


def earn_goal_notifications(stubs, user, clock):
    """Meet a daily and a weekly step goal: two notifications."""
    for period in (common_pb2.GOAL_PERIOD_DAILY, common_pb2.GOAL_PERIOD_WEEKLY):
        stubs.goals.CreateGoal(goal_pb2.CreateGoalRequest(metric=STEPS, period=period, target=100), metadata=user.auth)
    upload(stubs, user, batch([reading(STEPS, local_midnight(clock, "Europe/Paris") + 600, 150)]))
    return eventually(lambda: list_page(stubs, user), lambda page: len(page.notifications) == 2)


def test_notifications_are_listed_newest_first_and_paged(stubs, alice, clock):
    everything = earn_goal_notifications(stubs, alice, clock)
    assert everything.unread_count == 2
    first = list_page(stubs, alice, page_size=1)
    second = list_page(stubs, alice, page_size=1, page_token=first.next_page_token)
    assert first.next_page_token and not second.next_page_token
    assert [n.notification_id for n in (*first.notifications, *second.notifications)] == [
        n.notification_id for n in everything.notifications
    ]
    assert everything.notifications[0].created_at.ToDatetime() >= everything.notifications[1].created_at.ToDatetime()


def test_marking_read_updates_the_unread_list(stubs, alice, clock):
    everything = earn_goal_notifications(stubs, alice, clock)
    target = everything.notifications[0].notification_id
    marked = stubs.notifications.MarkRead(
        notification_pb2.MarkReadRequest(notification_ids=[target]), metadata=alice.auth
    )
    assert marked.marked == 1
    unread = list_page(stubs, alice, unread_only=True)
    assert [n.notification_id for n in unread.notifications] == [everything.notifications[1].notification_id]
    assert unread.unread_count == 1
    again = stubs.notifications.MarkRead(
        notification_pb2.MarkReadRequest(notification_ids=[target]), metadata=alice.auth
    )
    assert again.marked == 0


def test_another_users_notification_cannot_be_marked(stubs, alice, bob, clock):
    everything = earn_goal_notifications(stubs, alice, clock)
    ids = [n.notification_id for n in everything.notifications]
    error = rpc_error(
        lambda: stubs.notifications.MarkRead(notification_pb2.MarkReadRequest(notification_ids=ids), metadata=bob.auth)
    )
    assert error.code() == Code.NOT_FOUND
    assert list_page(stubs, alice).unread_count == 2
    assert not list_page(stubs, bob).notifications


def test_bad_listing_and_marking_requests_are_refused(stubs, alice):
    assert rpc_error(lambda: list_page(stubs, alice, page_size=101)).code() == Code.INVALID_ARGUMENT
    assert rpc_error(lambda: list_page(stubs, alice, page_token="garbage")).code() == Code.INVALID_ARGUMENT
    empty = rpc_error(lambda: stubs.notifications.MarkRead(notification_pb2.MarkReadRequest(), metadata=alice.auth))
    assert empty.code() == Code.INVALID_ARGUMENT
