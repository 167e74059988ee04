"""What differs between SQLite and PostgreSQL for the account repositories, and one facade over both connections.

Queries are written once, with psycopg2's `%s` placeholders; the SQLite dialect
turns them into `?` as Django's SQLite backend does (`convert_query`). Values
go in and come out through the dialect: SQLite keeps instants as UTC ISO texts
(some columns as Unix seconds, where they must sort and compare as numbers),
dates as ISO texts and clock times as "HH:MM"; PostgreSQL has timestamptz,
date and time for them. Everything else (booleans, ON CONFLICT upserts,
RETURNING, IS DISTINCT FROM, cursor.rowcount) both engines share.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from fittrack.core.domain.errors import NotFound

_PLACEHOLDER = re.compile(r"(?<!%)%s")


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _as_is(value: Any) -> Any:
    return value


class Dialect:
    """PostgreSQL's side; SqliteDialect overrides what SQLite does otherwise."""

    # Readers that decide a write lock its rows: PostgreSQL runs writers side by side at READ COMMITTED.
    for_update = " FOR UPDATE"
    # Writers run side by side: a claim of queued work locks its rows and passes over those others hold.
    skip_locked = " FOR UPDATE SKIP LOCKED"
    # Keeps a row from being deleted (or its key changed) until commit, and nothing else: the lock a foreign-key
    # check takes, so rows added for the same account side by side do not wait for each other.
    key_share = " FOR KEY SHARE"
    # Array parameters (`= ANY(%s)`, unnest): one statement for any number of keys.
    arrays = True
    # WITH ... AS (DELETE ...) INSERT ...: two writes in one round trip.
    writable_ctes = True

    def query(self, sql: str) -> str:
        return sql

    # Values in and out: instants (`seconds` for the columns SQLite keeps as Unix seconds), dates and
    # clock times. PostgreSQL stores each in a type of its own (timestamptz, date, time); instants come
    # back in UTC, as the connections' TimeZone is UTC, and go in converted to it.
    instant = moment = seconds = from_seconds = staticmethod(_utc)
    day = from_day = clock = from_clock = staticmethod(_as_is)

    def nocase(self, expression: str) -> str:
        """A text compared without regard to case; matches the unique index on lower(username)."""
        return f"lower({expression})"

    def chunks(self, items: Sequence[str], size: int = 500) -> Iterator[list[str]]:
        """The distinct keys in slices for `any_of`: one slice here, as an array is a single parameter."""
        distinct = list(dict.fromkeys(items))
        if distinct:
            yield distinct

    def any_of(self, column: str, keys: Sequence[str]) -> tuple[str, list]:
        """A condition that `column` is one of the (text) keys, and its parameters."""
        return f"{column} = ANY(%s::text[])", [list(keys)]


class SqliteDialect(Dialect):
    # One writer at a time (BEGIN IMMEDIATE): nothing can change a row between a read and the write it
    # decides, nor claim a row another writer claims, so no row locks. No arrays, no DELETE inside WITH.
    for_update = skip_locked = key_share = ""
    arrays = writable_ctes = False

    def query(self, sql: str) -> str:
        return _qmarks(sql)

    def instant(self, moment: datetime | None) -> Any:
        # One format, all in UTC: the texts sort and compare as the moments do.
        return moment.astimezone(UTC).isoformat() if moment else None

    def moment(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def seconds(self, moment: datetime | None) -> Any:
        return moment.timestamp() if moment is not None else None

    def from_seconds(self, value: Any) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    def day(self, value: date | None) -> Any:
        return value.isoformat() if value else None

    def from_day(self, value: Any) -> date | None:
        return date.fromisoformat(value) if value else None

    def clock(self, value: time | None) -> Any:
        return value.strftime("%H:%M") if value else None

    def from_clock(self, value: Any) -> time | None:
        return time.fromisoformat(value) if value else None

    def nocase(self, expression: str) -> str:
        return expression  # the column is COLLATE NOCASE, and its unique index serves the lookup

    def chunks(self, items: Sequence[str], size: int = 500) -> Iterator[list[str]]:
        # Slices small enough for one statement's parameters (SQLite allows 32,766 at most).
        distinct = list(dict.fromkeys(items))
        for offset in range(0, len(distinct), size):
            yield distinct[offset : offset + size]

    def any_of(self, column: str, keys: Sequence[str]) -> tuple[str, list]:
        return f"{column} IN ({','.join(['%s'] * len(keys))})", list(keys)


POSTGRES = Dialect()
SQLITE = SqliteDialect()


@functools.lru_cache(maxsize=1024)
def _qmarks(sql: str) -> str:
    return _PLACEHOLDER.sub("?", sql).replace("%%", "%")


class SqlRepository:
    """A repository over one transaction's Sql; `_d` is its dialect."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self._d = sql.dialect

    def _hold_account(self, user_id: str) -> None:
        """NotFound unless the account exists, and kept from being deleted until this transaction ends.

        Rows that belong to an account are added after this check rather than left to the foreign key: an account
        deleted in the same instant (DeleteAccount racing CreateGoal) would otherwise fail the INSERT with the
        driver's IntegrityError (an INTERNAL to the caller), and in PostgreSQL abort the whole transaction.
        PostgreSQL holds the row with FOR KEY SHARE; SQLite writes one transaction at a time (BEGIN IMMEDIATE).
        """
        held = self._sql.execute(f"SELECT 1 FROM users WHERE user_id = %s{self._d.key_share}", (user_id,))
        if held.fetchone() is None:
            raise NotFound("this account no longer exists: it was deleted")


class Sql:
    """One transaction's connection as the repositories use it: queries in the dialect's form, cursors back.

    `execute` is sqlite3's Connection.execute or the PostgreSQL transaction's;
    both return a DB-API cursor (fetchone, fetchall, iteration, rowcount).
    """

    def __init__(self, execute: Callable[..., Any], dialect: Dialect, read_only: bool = False) -> None:
        self._execute = execute
        self.dialect = dialect
        self.read_only = read_only

    def execute(self, sql: str, args: Sequence | None = None) -> Any:
        query = self.dialect.query(sql)
        return self._execute(query) if args is None else self._execute(query, args)

    def rows_in(self, head: str, column: str, keys: Sequence[str], args: Sequence = (), tail: str = "") -> list:
        """The rows of `head` + a condition that `column` is one of `keys` + `tail`, in as many statements
        as the dialect needs; `args` are the parameters of `head`."""
        rows = []
        for chunk in self.dialect.chunks(keys):
            condition, keys_args = self.dialect.any_of(column, chunk)
            rows += self.execute(f"{head} {condition}{tail}", (*args, *keys_args)).fetchall()
        return rows

    @property
    def for_update(self) -> str:
        """FOR UPDATE where the dialect needs it and this transaction may write."""
        return "" if self.read_only else self.dialect.for_update
