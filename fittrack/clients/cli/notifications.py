"""Commands about notifications: list, mark read, preferences, and watch them arrive."""

from __future__ import annotations

import argparse
import threading
from datetime import time
from time import sleep
from typing import TYPE_CHECKING

import grpc
from google.type import timeofday_pb2
from rich.text import Text

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context, local_time
from fittrack.clients.cli.session import Metadata
from fittrack.clients.cli.terminal import message_dict
from fittrack.generated.v1 import notification_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands

# How long `watch` waits between attempts to reach a server that went away: a restart takes seconds, and
# each attempt is one call the server refuses at once, so it tries about once a second (the channel's own
# reconnect backoff is capped likewise: fittrack.clients.channel.QUICK_RECONNECT).
RECONNECT_DELAYS = (0.25, 0.5, 1)
# On reconnecting, the newest notifications are read back so none made meanwhile is missed.
CATCH_UP = 50


def add_commands(commands: Commands) -> None:
    notifications = commands.group("notifications", "read notifications")
    listing = commands.command(notifications, "list", cmd_notifications_list, "list notifications, newest first")
    listing.add_argument("--unread", action="store_true", help="unread ones only")
    listing.add_argument("--limit", type=words.positive_int, default=50, help="at most this many (default 50)")
    commands.command(notifications, "read", cmd_notifications_read, "mark notifications as read").add_argument(
        "ids", nargs="+", metavar="ID"
    )
    watch = commands.command(
        notifications, "watch", cmd_notifications_watch, "print new notifications as they come, until Ctrl-C"
    )
    watch.epilog = "When the server goes away, watch waits for it and carries on, printing what came meanwhile."
    preferences = commands.command(
        notifications, "preferences", cmd_notifications_preferences, "show or change notification preferences"
    )
    switch = preferences.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="enable", action="store_const", const=True, help="turn notifications on")
    switch.add_argument("--off", dest="enable", action="store_const", const=False, help="turn notifications off")
    quiet = preferences.add_mutually_exclusive_group()
    quiet.add_argument("--quiet", type=quiet_hours, metavar="HH:MM-HH:MM", help="quiet hours in local time")
    quiet.add_argument("--no-quiet", action="store_true", help="remove the quiet hours")


def quiet_hours(text: str) -> tuple[time, time]:
    start, separator, end = text.partition("-")
    try:
        if not separator:
            raise ValueError
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range of local times such as 22:00-07:00") from None


def print_notification(ctx: Context, notification: notification_pb2.Notification) -> None:
    marker = Text(" ") if notification.read else Text("•", style="cyan bold")
    when = local_time(notification.created_at, ctx.zone())
    ctx.terminal.line(Text.assemble(marker, f" {when}  ", (notification.title, "bold")))
    ctx.terminal.line(f"    {notification.body}")
    ctx.terminal.line(Text(f"    id {notification.notification_id}", style="dim"))


def cmd_notifications_list(ctx: Context, args: argparse.Namespace) -> None:
    collected: list[notification_pb2.Notification] = []
    request = notification_pb2.ListNotificationsRequest(unread_only=args.unread, page_size=min(args.limit, 100))
    while True:
        page = ctx.client.unary(ctx.client.notifications.ListNotifications, request)
        collected.extend(page.notifications)
        if not page.next_page_token or len(collected) >= args.limit:
            break
        request.page_token = page.next_page_token
    collected = collected[: args.limit]
    if args.json:
        ctx.terminal.json({"notifications": [message_dict(n) for n in collected], "unread_count": page.unread_count})
        return
    if not collected:
        ctx.terminal.line("No unread notifications." if args.unread else "No notifications.")
        return
    for notification in collected:
        print_notification(ctx, notification)
    ctx.terminal.line(f"{page.unread_count:,} unread.")


def cmd_notifications_read(ctx: Context, args: argparse.Namespace) -> None:
    request = notification_pb2.MarkReadRequest(notification_ids=args.ids)
    response = ctx.client.unary(ctx.client.notifications.MarkRead, request)
    if args.json:
        ctx.terminal.json(response)
    else:
        ctx.terminal.line(f"Marked {words.plural(response.marked, 'notification')} as read.")


def cmd_notifications_preferences(ctx: Context, args: argparse.Namespace) -> None:
    client = ctx.client
    if args.enable is None and args.quiet is None and not args.no_quiet:
        preferences = client.unary(
            client.notifications.GetNotificationPreferences, notification_pb2.GetNotificationPreferencesRequest()
        )
    else:
        request = notification_pb2.UpdateNotificationPreferencesRequest(clear_quiet_hours=args.no_quiet)
        if args.enable is not None:
            request.enabled = args.enable
        if args.quiet is not None:
            start, end = args.quiet
            request.quiet_start.CopyFrom(timeofday_pb2.TimeOfDay(hours=start.hour, minutes=start.minute))
            request.quiet_end.CopyFrom(timeofday_pb2.TimeOfDay(hours=end.hour, minutes=end.minute))
        preferences = client.unary(client.notifications.UpdateNotificationPreferences, request)
    if args.json:
        ctx.terminal.json(preferences)
        return
    ctx.terminal.line(f"Notifications: {'on' if preferences.enabled else 'off'}")
    if preferences.HasField("quiet_start"):
        start, end = preferences.quiet_start, preferences.quiet_end
        ctx.terminal.line(
            f"Quiet hours: {start.hours:02d}:{start.minutes:02d} to {end.hours:02d}:{end.minutes:02d} (local time)"
        )
    else:
        ctx.terminal.line("Quiet hours: none")


def cmd_notifications_watch(ctx: Context, args: argparse.Namespace) -> None:
    """Print notifications as they come; when the server goes away, wait for it and carry on.

    Notifications made while the stream was down are read back from the unread list on reconnecting (the
    stream only carries what happens while it is open); the ids already shown keep any from printing twice.
    A server that cannot be reached at the start is an error, as for every other command.
    """
    client = ctx.client
    if not args.json:
        ctx.zone()  # times are shown in the account's zone: asked now, not while a notification waits
    shown: set[str] = set()
    connected = threading.Event()

    def show(notification: notification_pb2.Notification) -> None:
        if notification.notification_id in shown:
            return
        shown.add(notification.notification_id)
        if args.json:
            ctx.terminal.json_line(notification)
        else:
            print_notification(ctx, notification)
            ctx.terminal.out.file.flush()

    def watch(auth: Metadata, reconnecting: bool) -> None:
        # No deadline: the stream is meant to stay open until the user stops it.
        stream = client.notifications.SubscribeNotifications(
            notification_pb2.SubscribeNotificationsRequest(), metadata=auth
        )
        try:
            # The server sends its headers once the subscription is in place: from then on nothing is missed.
            stream.initial_metadata()
            if not stream.is_active():
                for _ in stream:  # raises the status the server ended the call with
                    pass
                return
            connected.set()
            if reconnecting:
                ctx.terminal.note("Reconnected.")
                missed = client.notifications.ListNotifications(
                    notification_pb2.ListNotificationsRequest(unread_only=True, page_size=CATCH_UP),
                    metadata=auth,
                    timeout=client.timeout,
                )
                for notification in reversed(missed.notifications):
                    show(notification)
            else:
                ctx.terminal.note("Watching for notifications; press Ctrl-C to stop.")
            for notification in stream:
                show(notification)
        except BaseException:
            stream.cancel()
            raise

    attempt = 0
    ever_connected = False
    while True:
        connected.clear()
        try:
            # A stream that ends without an error ended because the server stopped: wait for it like for a drop.
            client.call(lambda auth, again=ever_connected: watch(auth, reconnecting=again))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or not (ever_connected or connected.is_set()):
                raise
        if connected.is_set():
            ever_connected = True
            attempt = 0
            ctx.terminal.warning(f"lost the connection to {client.address}; reconnecting (Ctrl-C to stop)")
        elif not ever_connected:
            return
        sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
        attempt += 1
