"""The persister: applies accepted batches to the metric store.

Embedded profile: it runs inside the server process, reading the SQLite
ingest log in order. It applies a chunk of batches, then deletes them from
the log: that deletion is its offset commit, made only after the write, so a
crash in between re-applies the chunk, which the idempotent handler absorbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.adapters.sqlite import SqliteReadingBus
from core.services.persistence import Persister

log = logging.getLogger(__name__)

CHUNK = 200
IDLE_POLL_SECONDS = 1.0


class EmbeddedPersister:
    def __init__(self, bus: SqliteReadingBus, persister: Persister) -> None:
        self._bus = bus
        self._persister = persister
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._bus.on_published = self.wake
        self._task = asyncio.create_task(self._run(), name="embedded-persister")

    def wake(self) -> None:
        """Thread-safe: called by the bus after each commit."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def drain_once(self) -> int:
        """Apply the oldest pending chunk; returns how many batches it applied."""
        pending = self._bus.pending(CHUNK)
        if not pending:
            return 0
        self._persister.apply([batch for _, batch in pending])
        self._bus.acknowledge(pending[-1][0])
        return len(pending)

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before draining, so a commit during the drain still wakes the next round.
            self._wake.clear()
            try:
                while not self._stopping and await asyncio.to_thread(self.drain_once):
                    pass
            except Exception:
                # The batches stay in the log and are retried: nothing is lost.
                log.exception("persister failed to apply a chunk; retrying")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def stop(self) -> None:
        """Stop after the chunk in hand; what remains in the log is applied at the next start."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._bus.on_published = lambda: None
