"""The dispatcher: takes new notifications off the queue, stores them and delivers them (core/services/dispatch.py).

Embedded profile (EmbeddedDispatcher): it runs inside the server process,
draining the SQLite outbox in order. It handles a chunk, then deletes it
from the outbox: that deletion is its offset commit, made only after the
write, so a crash in between hands the chunk over again, which the handler
absorbs (the notifications are stored once; only pushes still pending are
tried again). Production profile (KafkaDispatcher): its own processes, one
consumer group over the `notifications` topic, the same handler.

Both run a retry loop beside it, which pushes the deliveries that fell due:
retries after a failure, pushes held back by quiet hours, replayed dead
letters, and pushes a crashed dispatcher left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from fittrack.core.adapters.codec import decode_notifications
from fittrack.core.services.dispatch import Dispatcher
from fittrack.workers.draining import LogDrainer
from fittrack.workers.runtime import RETRY_SECONDS, ConsumerLoop

log = logging.getLogger(__name__)

# The longest the retry loop sleeps: a dead letter replayed from another process is picked up within it.
RETRY_POLL_SECONDS = 1.0


class EmbeddedDispatcher:
    """The outbox drained by a LogDrainer into the dispatcher, and the push retry loop beside it."""

    def __init__(self, queue, dispatcher: Dispatcher) -> None:
        self._queue = queue
        self._dispatcher = dispatcher
        self._drainer = LogDrainer("embedded-dispatcher", queue, dispatcher.handle)
        self._stopped = asyncio.Event()
        self._retries: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue.on_sent = self._drainer.wake
        await self._drainer.start()
        if self._dispatcher.pushes:
            self._retries = asyncio.create_task(self._retry(), name="embedded-push-retries")

    def wake(self) -> None:
        self._drainer.wake()

    def drain_once(self) -> int:
        return self._drainer.drain_once()

    async def _retry(self) -> None:
        while not self._stopped.is_set():
            try:
                pause = await asyncio.to_thread(retry_round, self._dispatcher)
            except Exception:
                log.exception("push retry round failed; trying again in %.0f s", RETRY_SECONDS)
                pause = RETRY_SECONDS
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), pause)

    async def stop(self) -> None:
        """Stop after the chunk and the pushes in hand; what remains is handled at the next start."""
        self._stopped.set()
        await self._drainer.stop()
        if self._retries is not None:
            await self._retries
            self._retries = None
        self._queue.on_sent = lambda: None


def retry_round(dispatcher: Dispatcher) -> float:
    """Push what is due now; how long to wait before the next round (0: more may be due already)."""
    if dispatcher.push_due():
        return 0.0
    wait = dispatcher.seconds_until_due()
    return RETRY_POLL_SECONDS if wait is None else min(RETRY_POLL_SECONDS, max(0.0, wait))


class KafkaDispatcher(ConsumerLoop):
    """Production profile: consumes `notifications` in a consumer group (ConsumerLoop: handle, then commit).

    Handling records again stores nothing twice. A user's notifications all go
    to one partition (KafkaNotificationQueue), so one dispatcher handles a
    user's at a time, in order, which keeps the daily nudge cap exact.
    """

    what = "dispatcher"

    def __init__(self, consumer, dispatcher: Dispatcher, **loop) -> None:  # ConsumerLoop's instruments, lag_seconds
        super().__init__(consumer, **loop)
        self._dispatcher = dispatcher

    def handle(self, records) -> None:
        notifications = []
        for record in records:
            try:
                notifications.extend(decode_notifications(record.value))
            except (ValueError, KeyError, TypeError, AttributeError):
                # Never decodable, so never deliverable: kept back, it would stop its partition for good.
                log.error("skipping a malformed notification record at offset %s", record.offset)
        self._dispatcher.handle(notifications)


def run_retries(dispatcher: Dispatcher, stopping: threading.Event) -> None:
    """The retry loop of a dispatcher process: several processes share the due pushes (SKIP LOCKED)."""
    while not stopping.is_set():
        try:
            pause = retry_round(dispatcher)
        except Exception:
            log.exception("push retry round failed; trying again in %.0f s", RETRY_SECONDS)
            pause = RETRY_SECONDS
        if pause:
            stopping.wait(pause)
