"""The long-lived streams open on one server process: how many a user may hold, and ending those whose session ended.

A device that reconnects in a loop, or a leaked client, would otherwise take
memory and file descriptors meant for thousands of other devices. The count
is per process: behind a load balancer each server enforces it on its own.
Keepalive (see app.py) ends the streams of devices that vanished without
closing them, so their slots come back.

A stream's session is checked once, when it opens; a logout or password
change later must still end it, idle or not, or a stolen token's streams
would go on and keep the owner's slots. One task per process re-checks the
sessions of all open streams every `recheck_seconds` and ends the streams of
those that ended, which frees their slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fittrack.core.domain.accounts import Principal
from fittrack.core.domain.errors import ResourceExhausted, Unauthenticated

log = logging.getLogger(__name__)

T = TypeVar("T")


class OpenStream:
    """One open stream: its handler awaits through `until_ended`, which gives way once the session has ended."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self._ended: Unauthenticated | None = None
        # The handler's task while it waits inside until_ended, so end() can interrupt that wait.
        self._waiting: asyncio.Task | None = None
        self._interrupted = False

    @property
    def ended(self) -> bool:
        return self._ended is not None

    async def until_ended(self, awaitable: Awaitable[T]) -> T:
        """What `awaitable` gives, unless the stream's session ends first: then Unauthenticated.

        The wait is interrupted the way asyncio.timeout() does it, by cancelling
        the waiting task, which costs nothing per call. The cancellation can
        land only on this await: end() cancels only while a task waits here.
        """
        if self._ended is not None:
            # Not awaited, so a coroutine passed in would warn that it never ran.
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise self._ended
        task = asyncio.current_task()
        self._waiting = task
        try:
            result = await awaitable
        except asyncio.CancelledError:
            # Ours to turn into the session's error unless someone else cancelled the call too.
            if self._interrupted and task.uncancel() == 0:
                raise self._ended from None
            raise
        else:
            if self._interrupted:  # the awaitable swallowed our cancellation: take it back all the same
                task.uncancel()
                raise self._ended
            return result
        finally:
            self._waiting = None
            self._interrupted = False

    def end(self, error: Unauthenticated) -> None:
        if self._ended is not None:
            return
        self._ended = error
        if self._waiting is not None:
            self._interrupted = True
            self._waiting.cancel()


class OpenStreams:
    def __init__(
        self, per_user: int, check_session: Callable[[Principal], None], recheck_seconds: float = 15.0
    ) -> None:
        self._per_user = per_user
        self._check_session = check_session
        self._recheck = recheck_seconds
        self._count: Counter[str] = Counter()
        self._by_session: dict[str, set[OpenStream]] = {}
        self._watcher: asyncio.Task | None = None

    @contextmanager
    def hold(self, principal: Principal) -> Iterator[OpenStream]:
        """A slot for the duration of a stream; ResourceExhausted when the user has none left.

        The stream is ended (its until_ended raises Unauthenticated) within
        about `recheck_seconds` of its session's end.
        """
        user_id = principal.user_id
        # Only the event loop's thread calls this, so the check and the count need no lock.
        if self._count[user_id] >= self._per_user:
            raise ResourceExhausted(
                f"this account already has {self._per_user} open streams on this server, the most allowed; "
                "close one (a device needs one SyncReadings stream) and try again"
            )
        stream = OpenStream(principal)
        self._count[user_id] += 1
        self._by_session.setdefault(principal.session_id, set()).add(stream)
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="stream-sessions")
        try:
            yield stream
        finally:
            self._count[user_id] -= 1
            if not self._count[user_id]:
                del self._count[user_id]
            streams = self._by_session[principal.session_id]
            streams.discard(stream)
            if not streams:
                del self._by_session[principal.session_id]
            # No stream left to watch: the task goes, so none is pending when the server stops.
            if not self._by_session and self._watcher is not None:
                self._watcher.cancel()
                self._watcher = None

    def open_for(self, user_id: str) -> int:
        return self._count[user_id]

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._recheck)
            # One check per session however many streams it has open.
            principals = [next(iter(streams)).principal for streams in self._by_session.values()]
            ended = await asyncio.to_thread(self._ended_sessions, principals)
            for session_id, error in ended.items():
                for stream in self._by_session.get(session_id, ()):
                    stream.end(error)

    def _ended_sessions(self, principals: list[Principal]) -> dict[str, Unauthenticated]:
        ended = {}
        for principal in principals:
            try:
                self._check_session(principal)
            except Unauthenticated as error:
                ended[principal.session_id] = error
            except Exception:  # noqa: BLE001 - the next round tries again; the streams' own calls meet the outage
                log.warning(
                    "could not check the sessions of open streams; trying again in %.0f s", self._recheck, exc_info=True
                )
                break
        return ended
