"""The persister: applies accepted batches to the metric store.

Embedded profile (EmbeddedPersister): it runs inside the server process,
reading the SQLite ingest log in order. It applies a chunk of batches, then
deletes them from the log: that deletion is its offset commit, made only after
the write, so a crash in between re-applies the chunk, which the idempotent
handler absorbs. Production profile (KafkaPersister): its own processes, one
consumer group over the `readings` topic, the same handler.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from fittrack.core.adapters.codec import decode_batch
from fittrack.core.domain.sequences import LogPosition
from fittrack.core.services.persistence import FirstCopies, Persister
from fittrack.workers.draining import LogDrainer
from fittrack.workers.runtime import ConsumerLoop

log = logging.getLogger(__name__)


class EmbeddedPersister:
    """The SQLite ingest log drained by a LogDrainer into the persister."""

    def __init__(self, bus, persister: Persister) -> None:
        self._bus = bus
        self._drainer = LogDrainer("embedded-persister", bus, persister.apply)

    async def start(self) -> None:
        self._bus.on_published = self._drainer.wake
        await self._drainer.start()

    def wake(self) -> None:
        self._drainer.wake()

    def drain_once(self) -> int:
        return self._drainer.drain_once()

    async def stop(self) -> None:
        await self._drainer.stop()
        self._bus.on_published = lambda: None


class KafkaPersister(ConsumerLoop):
    """Production profile: consumes `readings` in a consumer group (ConsumerLoop: handle, then commit).

    Applying a batch again changes nothing: the handler is idempotent. Of
    several copies of one numbered batch only the first in the log is applied
    (FirstCopies): the others were answered DUPLICATE.
    FerretDB 1.x does not lock a document between its read and its write,
    which is safe only because one user's batches all land on one partition,
    and a partition has exactly one consumer in the group.
    """

    what = "persister"

    def __init__(
        self,
        consumer,
        persister: Persister,
        copies: FirstCopies,
        chores: Sequence[Callable[[], None]] = (),
        crash_after_writes: int = 0,
        **loop,  # ConsumerLoop's: instruments, lag_seconds
    ) -> None:
        super().__init__(consumer, **loop)
        self._persister = persister
        self._copies = copies
        self._chores = chores
        # Fault injection for the reliability tests: die between a write and its commit.
        self._crash_after_writes = crash_after_writes
        self._writes = 0

    def handle(self, records) -> None:
        logged = [(decode_batch(record.value), LogPosition(record.partition, record.offset)) for record in records]
        self._persister.apply(self._copies.counted(logged))

    def upkeep(self) -> None:
        self._copies.forget_expired()
        for chore in self._chores:
            chore()

    def before_commit(self) -> None:
        self._writes += 1
        if self._crash_after_writes and self._writes >= self._crash_after_writes:
            log.error("crashing on purpose after write %d, before its commit", self._writes)
            os._exit(CRASH_EXIT_CODE)


CRASH_EXIT_CODE = 86
