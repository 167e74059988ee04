"""The embedded profile's database: one SQLite file for accounts, metrics, the ingest log and the outbox.

The repositories and stores over it are in sqlite_accounts, sqlite_metrics, sqlite_ingest and sqlite_outbox.

Each thread keeps its own connection (sqlite3 connections must not be shared
across threads); WAL lets readers run while one writer commits, and
synchronous=FULL makes a commit survive a power cut, because a batch is
acknowledged to the device as soon as its commit returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fittrack.core.adapters.sql.migrator import Migration, migrate, migrations
from fittrack.core.domain.errors import Unavailable

# The schema, one file per version: fittrack/core/adapters/migrations/sqlite/NNNN_name.sql, or .py for a data step.
MIGRATIONS = migrations("sqlite")


class SqliteDatabase:
    """Thread-local connections to one SQLite file, plus its migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def migrate(self, target: int | None = None) -> int:
        """Apply the migrations not applied yet, up to version `target` (the latest by default).

        Returns the schema version. Safe to run again.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return migrate(_Ledger(self.connection()), "sqlite", target)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Unavailable(f"the database is busy ({error}); try again") from error
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            # Also after a failed COMMIT (a full disk): a connection left in its
            # transaction would hold the write lock until the process ends.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise Unavailable(f"the database could not store this ({error}); try again") from error
            raise

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class _Ledger:
    """SQLite's bookkeeping for the migrator: PRAGMA user_version counts the versions applied, each in its
    own transaction with its version bump."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextmanager
    def session(self) -> Iterator[set[int]]:
        yield set(range(1, self._conn.execute("PRAGMA user_version").fetchone()[0] + 1))

    def apply(self, migration: Migration) -> None:
        script = migration.script
        if script is not None:
            # executescript commits on its own; the version bump rides in the same script.
            self._conn.executescript(f"BEGIN;\n{script}\n;\nPRAGMA user_version = {migration.version};\nCOMMIT;")
            return
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process starting on the same file may have applied it while this one waited for the lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] < migration.version:
                migration.step(conn)
                conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
