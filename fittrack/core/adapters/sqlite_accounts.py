"""The embedded profile's account unit of work: the shared repositories (fittrack.core.adapters.sql) on SQLite."""

from __future__ import annotations

import sqlite3

from fittrack.core.adapters.sql.dialect import SQLITE, Sql
from fittrack.core.adapters.sql.repositories import attach_repositories
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.domain.errors import Unavailable
from fittrack.core.ports import AccountsUnitOfWork


class SqliteUnitOfWork(AccountsUnitOfWork):
    """`read_only` units of work only read: they take no write lock, so WAL lets
    them run beside the ingest log's writer and the persister."""

    def __init__(self, db: SqliteDatabase, read_only: bool = False) -> None:
        self._db = db
        self._read_only = read_only

    def __enter__(self) -> SqliteUnitOfWork:
        self._conn = self._db.connection()
        # IMMEDIATE takes the write lock up front: a deferred transaction that
        # reads and then writes fails at once if another writer got in between.
        try:
            self._conn.execute("BEGIN" if self._read_only else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Unavailable(f"the database is busy ({error}); try again") from error
        attach_repositories(self, Sql(self._conn.execute, SQLITE, self._read_only))
        return self

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
