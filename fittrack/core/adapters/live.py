"""In-process live delivery of notifications to SubscribeNotifications streams."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict

from fittrack.core.domain.notifications import Notification
from fittrack.core.ports import NotificationSink

log = logging.getLogger(__name__)


class LiveNotifications(NotificationSink):
    """Fans a stored notification out to every open stream of its user.

    `deliver` may be called from any thread (the persister runs in worker
    threads); each subscriber has a bounded queue on the server's event loop,
    and a subscriber too slow to drain it misses live copies, never the stored
    notification, which ListNotifications still shows.
    """

    QUEUE_SIZE = 100

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, user_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(self.QUEUE_SIZE)
        with self._lock:
            self._subscribers[user_id].add(queue)
        return queue

    def unsubscribe(self, user_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers[user_id].discard(queue)
            if not self._subscribers[user_id]:
                del self._subscribers[user_id]

    def subscriber_count(self, user_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(user_id, ()))

    def deliver(self, notification: Notification) -> None:
        with self._lock:
            queues = list(self._subscribers.get(notification.user_id, ()))
        if queues and self._loop is not None:
            self._loop.call_soon_threadsafe(self._put, queues, notification)

    @staticmethod
    def _put(queues: list[asyncio.Queue], notification: Notification) -> None:
        for queue in queues:
            try:
                queue.put_nowait(notification)
            except asyncio.QueueFull:
                log.warning("a notification stream is not keeping up; it misses a live notification")
