"""The embedded profile's ingest log: the stand-in for the `readings` topic, a table in the SQLite file."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from fittrack.core.adapters.codec import decode_batch, encode_batch
from fittrack.core.adapters.futures import fail, resolve, submission_groups
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.domain.metrics import AcceptedBatch
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import (
    PublishOutcome,
    ReadingBus,
)


class SqliteReadingBus(ReadingBus):
    """The embedded stand-in for the `readings` topic: an append-only log table.

    Group commit: one writer thread takes every batch submitted since its last
    commit and stores them in one transaction, so many streams share one
    fsync instead of queueing for one each. `on_published` wakes the
    in-process persister after each commit.
    """

    GROUP_LIMIT = 2_000  # batches per transaction: bounds how long one commit holds the write lock

    def __init__(self, db: SqliteDatabase, on_published: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self.on_published = on_published
        self._queue: queue.SimpleQueue[tuple[Sequence[AcceptedBatch], Future] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        # The in-process persister applies what was just written: it takes the
        # batches from here rather than decoding them back from the log, which
        # is only read after a restart (or when the persister lags far behind).
        self._recent: dict[int, AcceptedBatch] = {}
        self._recent_lock = threading.Lock()

    RECENT_LIMIT = 5_000  # batches kept in memory for the persister; about 50 MB at 100 readings each

    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        future: Future[list[str]] = Future()
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="ingest-log-writer", daemon=True)
                self._writer.start()
        self._queue.put((batches, future))
        return future

    def _write_loop(self) -> None:
        for group in submission_groups(self._queue, self.GROUP_LIMIT):
            try:
                outcomes = self._write([batches for batches, _ in group])
            except Exception as error:  # noqa: BLE001 - every waiting stream must hear of it
                for _, future in group:
                    fail(future, error)
                continue
            for (_, future), result in zip(group, outcomes, strict=True):
                resolve(future, result)
            if any(PublishOutcome.ACCEPTED in result for result in outcomes):
                self.on_published()

    def _write(self, groups: list[Sequence[AcceptedBatch]]) -> list[list[str]]:
        outcomes: list[list[str]] = []
        with self._db.transaction() as conn:
            cursors: dict[tuple[str, str], DeviceCursor] = {}
            log_rows, stored = [], []
            for batches in groups:
                result = []
                for batch in batches:
                    if batch.sequence:
                        key = (batch.user_id, batch.source)
                        cursor = cursors.get(key) or self._load_cursor(conn, *key)
                        if cursor.holds(batch.sequence):
                            result.append(PublishOutcome.DUPLICATE)
                            continue
                        cursors[key] = cursor.with_durable(batch.sequence)
                    log_rows.append((encode_batch(batch),))
                    stored.append(batch)
                    result.append(PublishOutcome.ACCEPTED)
                outcomes.append(result)
            conn.executemany("INSERT INTO ingest_log (payload) VALUES (?)", log_rows)
            # Only this thread inserts, inside its write transaction: the new ids are consecutive.
            (last_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
            conn.executemany(
                "INSERT INTO device_cursors (user_id, source, last_sequence, held) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, source) DO UPDATE"
                " SET last_sequence = excluded.last_sequence, held = excluded.held",
                [(user_id, source, c.highest, c.held) for (user_id, source), c in cursors.items()],
            )
        with self._recent_lock:
            if stored and len(self._recent) + len(stored) <= self.RECENT_LIMIT:
                self._recent.update(zip(range(last_id - len(stored) + 1, last_id + 1), stored, strict=True))
        return outcomes

    @staticmethod
    def _load_cursor(conn: sqlite3.Connection, user_id: str, source: str) -> DeviceCursor:
        row = conn.execute(
            "SELECT last_sequence, held FROM device_cursors WHERE user_id = ? AND source = ?", (user_id, source)
        ).fetchone()
        return DeviceCursor(*row) if row else DeviceCursor()

    def cursor(self, user_id: str, source: str) -> DeviceCursor:
        return self._load_cursor(self._db.connection(), user_id, source)

    def close(self) -> None:
        """Store what was submitted, then stop the writer."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=30)

    def pending(self, limit: int) -> list[tuple[int, AcceptedBatch]]:
        """The oldest batches not yet applied, with their log ids."""
        rows = self._db.connection().execute("SELECT id, payload FROM ingest_log ORDER BY id LIMIT ?", (limit,))
        with self._recent_lock:
            recent = self._recent
            return [(log_id, recent.get(log_id) or decode_batch(payload)) for log_id, payload in rows]

    def acknowledge(self, up_to_id: int) -> None:
        """The persister's offset commit: batches up to this id are applied."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM ingest_log WHERE id <= ?", (up_to_id,))
        with self._recent_lock:
            self._recent = {log_id: batch for log_id, batch in self._recent.items() if log_id > up_to_id}
