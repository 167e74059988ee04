"""Draining an in-process log of the embedded profile: the SQLite ingest log, or the notification outbox.

The log is the embedded stand-in for a Kafka topic. A background task takes
its oldest chunk, hands it to the handler, then deletes it from the log:
that deletion is the offset commit, made only after the handler's writes, so
a crash in between hands the chunk over again, which the idempotent handlers
absorb. Whoever appends to the log calls `wake`; without one, the task still
looks every IDLE_POLL_SECONDS (another process may have appended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
CHUNK = 200
IDLE_POLL_SECONDS = 1.0


class DrainableLog(Protocol[T]):
    def pending(self, limit: int) -> list[tuple[int, T]]:
        """The oldest entries not handled yet, with their ids, in order."""

    def acknowledge(self, up_to_id: int) -> None:
        """Everything up to this id is handled: delete it."""


class LogDrainer(Generic[T]):
    def __init__(self, name: str, source: DrainableLog[T], handle: Callable[[Sequence[T]], object]) -> None:
        self._name = name
        self._source = source
        self._handle = handle
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        """Thread-safe: called after each append to the log."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def drain_once(self) -> int:
        """Handle the oldest pending chunk; returns how many entries it held."""
        pending = self._source.pending(CHUNK)
        if not pending:
            return 0
        self._handle([entry for _, entry in pending])
        self._source.acknowledge(pending[-1][0])
        return len(pending)

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before draining, so an append during the drain still wakes the next round.
            self._wake.clear()
            try:
                while not self._stopping and await asyncio.to_thread(self.drain_once):
                    pass
            except Exception:
                # The entries stay in the log and are handled again: nothing is lost.
                log.exception("%s failed to handle a chunk; retrying", self._name)
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def stop(self) -> None:
        """Stop after the chunk in hand; what remains in the log is handled at the next start."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None
