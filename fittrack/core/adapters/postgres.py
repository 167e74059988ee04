"""The production profile's account database: PostgreSQL, through pooled psycopg2 connections.

The pool and the transactions on it are in postgres_pool, the unit of work in
postgres_accounts (its repositories, shared with SQLite, in fittrack.core.adapters.sql),
the device cursors and batch claims in postgres_devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from fittrack.core.adapters.postgres_pool import (
    CONNECTION_ERRORS,
    UNAVAILABLE,
    Busy,
    Pool,
    Transaction,
    describe_dsn,
)
from fittrack.core.adapters.sql.migrator import MIGRATIONS_ROOT, Migration, migrate

__all__ = ["MIGRATIONS_DIR", "UNAVAILABLE", "Busy", "PostgresDatabase", "describe_dsn"]


MIGRATIONS_DIR = MIGRATIONS_ROOT / "postgres"
# Any constant works as long as every Fittrack process uses the same one.
_MIGRATION_LOCK = 0x6669_7474_7261_636B  # "fittrack"


class PostgresDatabase:
    """Connection pools to the primary and to a read replica (the primary again when there is none)."""

    def __init__(
        self,
        primary_dsn: str,
        replica_dsn: str = "",
        pool_max: int = 20,
        connect_timeout: int = 3,
        wait_seconds: float = 5.0,
    ) -> None:
        if pool_max < 1:
            raise ValueError("pool_max must be at least 1")
        for dsn in (primary_dsn, replica_dsn):
            try:
                psycopg2.extensions.parse_dsn(dsn)
            except psycopg2.ProgrammingError:
                # The parser's message quotes the DSN, password included.
                raise ValueError("the PostgreSQL DSN is malformed") from None
        connect_kwargs = {
            "connect_timeout": connect_timeout,
            "application_name": "fittrack",
            # Timestamps come back in UTC, as the SQLite adapter returns them.
            "options": "-c TimeZone=UTC",
            # A peer that vanished without closing the socket is noticed in ~1 min instead of ~2 h.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        self.primary = Pool(primary_dsn, pool_max, wait_seconds, **connect_kwargs)
        self.replica = Pool(replica_dsn or primary_dsn, pool_max, wait_seconds, **connect_kwargs)
        self.has_replica = bool(replica_dsn) and replica_dsn != primary_dsn

    def __repr__(self) -> str:
        return f"PostgresDatabase(primary={self.primary.description!r}, replica={self.replica.description!r})"

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Transaction]:
        """One transaction, committed when the block ends normally and rolled back otherwise."""
        tx = Transaction(self.replica if read_only else self.primary, read_only)
        try:
            yield tx
            tx.commit()
        finally:
            tx.close()

    def migrate(self) -> int:
        """Apply the migrations not applied yet, each once; returns the schema version. Safe to run again."""
        return migrate(_Ledger(self), "postgres")

    def close(self) -> None:
        for pool in (self.primary, self.replica):
            if not pool.closed:
                pool.closeall()

    def reachable(self) -> bool:
        """Whether the primary takes a connection and answers a query now, for the health service.

        On a connection of its own: a pool lent out in full under load is busy, not down.
        """
        try:
            conn = psycopg2.connect(*self.primary._args, **{**self.primary._kwargs, "connect_timeout": 2})
        except CONNECTION_ERRORS:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except psycopg2.Error:
            return False
        finally:
            conn.close()


class _Ledger:
    """PostgreSQL's bookkeeping for the migrator: the versions applied are rows of schema_migrations, and one
    run applies them all in one transaction."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._tx: Transaction | None = None

    @contextmanager
    def session(self) -> Iterator[set[int]]:
        with self._db.transaction() as tx:
            # Two processes migrating at once take turns here: the second then
            # finds everything applied instead of failing on CREATE TABLE.
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            self._tx = tx
            try:
                yield {row[0] for row in tx.execute("SELECT version FROM schema_migrations").fetchall()}
            finally:
                self._tx = None

    def apply(self, migration: Migration) -> None:
        assert self._tx is not None, "apply() outside session()"
        script = migration.script
        if script is not None:
            self._tx.execute(script)
        else:
            migration.step(self._tx)
        self._tx.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))
