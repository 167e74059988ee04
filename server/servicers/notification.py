from __future__ import annotations

import asyncio

from core.adapters.live import LiveNotifications
from core.services.notifications import Notifications
from generated.fittrack.v1 import notification_pb2, notification_pb2_grpc
from server import mapping
from server.auth import current_principal


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, notifications: Notifications, live: LiveNotifications) -> None:
        self._notifications = notifications
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

    async def SubscribeNotifications(self, request, context):
        user_id = current_principal().user_id
        queue = self._live.subscribe(user_id)
        # Headers go out once the subscription is in place, so a client that
        # waits for them knows no later notification can be missed.
        await context.send_initial_metadata(())
        try:
            while True:
                yield mapping.notification(await queue.get())
        finally:
            self._live.unsubscribe(user_id, queue)
