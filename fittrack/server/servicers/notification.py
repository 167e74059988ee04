from __future__ import annotations

import asyncio

from fittrack.core.adapters.live import LiveNotifications
from fittrack.core.services.notifications import Notifications
from fittrack.generated.v1 import notification_pb2, notification_pb2_grpc
from fittrack.server import mapping
from fittrack.server.auth import current_principal
from fittrack.server.streams import OpenStream, OpenStreams


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(
        self,
        notifications: Notifications,
        live: LiveNotifications,
        streams: OpenStreams,
    ) -> None:
        self._notifications = notifications
        self._streams = streams
        self._live = live

    async def ListNotifications(self, request, context):
        page = await asyncio.to_thread(
            self._notifications.page,
            current_principal(),
            request.unread_only,
            request.page_size,
            request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[mapping.notification(n) for n in page.notifications],
            next_page_token=str(page.next_cursor) if page.next_cursor is not None else "",
            unread_count=page.unread_count,
        )

    async def MarkRead(self, request, context):
        marked = await asyncio.to_thread(
            self._notifications.mark_read, current_principal(), list(request.notification_ids)
        )
        return notification_pb2.MarkReadResponse(marked=marked)

    async def GetNotificationPreferences(self, request, context):
        preferences = await asyncio.to_thread(self._notifications.preferences, current_principal())
        return mapping.preferences(preferences)

    async def UpdateNotificationPreferences(self, request, context):
        preferences = await asyncio.to_thread(
            self._notifications.update_preferences,
            current_principal(),
            request.enabled if request.HasField("enabled") else None,
            mapping.optional_time_of_day(request, "quiet_start"),
            mapping.optional_time_of_day(request, "quiet_end"),
            request.clear_quiet_hours,
        )
        return mapping.preferences(preferences)

    async def SubscribeNotifications(self, request, context):
        principal = current_principal()
        with self._streams.hold(principal) as stream:
            async for notification in self._follow(stream, context):
                yield notification

    async def _follow(self, stream: OpenStream, context):
        principal = stream.principal
        queue = self._live.subscribe(principal.user_id)
        try:
            # Headers go out once the subscription is in place, so a client that
            # waits for them knows no later notification can be missed.
            await context.send_initial_metadata(())
            while True:
                notification = await stream.until_ended(queue.get())
                yield mapping.notification(notification)
        finally:
            self._live.unsubscribe(principal.user_id, queue)
