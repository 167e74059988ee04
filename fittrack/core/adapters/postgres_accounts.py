"""The production profile's account unit of work: the shared repositories (fittrack.core.adapters.sql) on PostgreSQL.

Semantics follow the embedded adapter (fittrack/core/adapters/sqlite_accounts.py) so the services
behave the same on both. Where the two engines differ:

- SQLite runs one writer at a time (BEGIN IMMEDIATE); PostgreSQL runs writers
  side by side at READ COMMITTED, so reads that decide a write (a refresh
  token's `used` flag, the unread state of notifications) lock their rows
  (the dialect's FOR UPDATE).
- A failed INSERT aborts a whole PostgreSQL transaction, but only the statement
  in SQLite; inserts that may collide use ON CONFLICT DO NOTHING instead, so a
  unit of work stays usable after AlreadyExists, as with SQLite.
- Every lost or refused connection becomes Unavailable, and the connection is
  thrown away rather than pooled, so the adapter heals once the server is back
  (fittrack/core/adapters/postgres_pool.py).
"""

from __future__ import annotations

from fittrack.core.adapters.postgres import PostgresDatabase
from fittrack.core.adapters.postgres_pool import Transaction
from fittrack.core.adapters.sql.dialect import POSTGRES, Sql
from fittrack.core.adapters.sql.repositories import attach_repositories
from fittrack.core.ports import AccountsUnitOfWork


class PostgresUnitOfWork(AccountsUnitOfWork):
    """Account changes in one PostgreSQL transaction: rolled back unless committed.

    read_only=True runs on the replica pool in a READ ONLY transaction; it may
    lag the primary slightly, so use it only where a read need not see the
    caller's own latest write.

    lookup=True is a READ ONLY transaction on the primary, or on the replica
    while the primary cannot be reached: session checks and time-zone lookups,
    which must see the latest logout but should not stop every call while
    Patroni fails over. On the replica they lag by its replay delay (synchronous
    replication: milliseconds), and only during the outage.
    """

    def __init__(self, db: PostgresDatabase, read_only: bool = False, lookup: bool = False) -> None:
        self._db = db
        self._read_only = read_only or lookup
        self._lookup = lookup
        self._tx: Transaction | None = None

    def __enter__(self) -> PostgresUnitOfWork:
        if self._lookup:
            self._tx = Transaction(self._db.primary, True, self._db.replica if self._db.has_replica else None)
        else:
            self._tx = Transaction(self._db.replica if self._read_only else self._db.primary, self._read_only)
        attach_repositories(self, Sql(self._tx.execute, POSTGRES, self._read_only))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            tx.close()

    def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("commit outside the unit of work's `with` block")
        self._tx.commit()

    def rollback(self) -> None:
        if self._tx is not None:
            self._tx.rollback()
