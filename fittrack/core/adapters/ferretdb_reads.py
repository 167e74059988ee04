"""Reads of daily figures straight from the PostgreSQL tables under FerretDB 1.x.

Two reads go this way. The goal evaluator's slot needs one number per user,
metric and day for up to a hundred thousand users: through FerretDB that is a
query per user (it hands no `$in` to PostgreSQL). And a view of a week or a
month needs a handful of day documents: through FerretDB it costs about 0.25
ms of FerretDB's CPU per document it decodes, and it decodes the whole month
a range query matches, so a view held a core for 7 ms and ViewMetric topped
out at about 140 calls/s. PostgreSQL answers both from FerretDB's own unique
index on `(_jsonb->'_id')` with `= ANY(...)`, returning only the figures asked
for, in well under a millisecond a view.

This reads FerretDB's storage format, which FerretDB does not promise to keep:
a document is a jsonb `_jsonb` column holding its fields as plain JSON plus a
`$s` schema key, in a table named in the `_ferretdb_database_metadata` table
of the schema named after the database (FerretDB 1.24, pinned in
infra/ferretdb/go.mod). It reads only top-level string fields and `d.<metric>`,
and tests hold it to the answers the MongoDB path gives. Any PostgreSQL error
makes the store fall back to that path. On a real MongoDB none of this is used:
`$in` on `_id` is served by MongoDB's own index and decoding is cheap.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import date

import psycopg2
import psycopg2.errors
import psycopg2.pool
from psycopg2 import sql

from fittrack.core.adapters.ferretdb_indexes import table_of
from fittrack.core.adapters.mongo_documents import day_summary, doc_id
from fittrack.core.domain.aggregation import DaySummary, days_between
from fittrack.core.domain.metrics import MetricKind

IDS_PER_STATEMENT = 5000


class FerretDBReads:
    """Daily figures from one FerretDB collection's table, through a small pool of connections opened when needed.

    Thread-safe: the server reads from its worker threads, the evaluator from its page reader.
    """

    def __init__(
        self, pg_dsn: str, database: str, collection: str, max_connections: int = 8, timeout_seconds: float = 5.0
    ) -> None:
        self._dsn = pg_dsn
        self._database = database
        self._collection = collection
        # Bounds the wait for a connection, the connection itself and each statement: a PostgreSQL that stops
        # answering without an error must not hold the server's threads (the store then reads through FerretDB,
        # whose own timeouts answer UNAVAILABLE).
        self._timeout = timeout_seconds
        self._closed = False
        # FerretDB 1.24 names a collection's table after the collection (re-created, it gets the same name);
        # an UndefinedTable makes the reader look it up again all the same.
        self._table: str | None = None
        # At most max_connections in use; callers beyond wait (psycopg2's pool would raise instead, and close
        # every connection beyond its minimum when it comes back).
        self._free = threading.BoundedSemaphore(max_connections)
        self._idle: list = []  # list.append and list.pop are atomic

    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        """The user's stored daily summaries of `metric` in [start, end], in date order."""
        ids = [json.dumps(doc_id(user_id, day)) for day in days_between(start, end)]
        rows = self._rows(ids, sql.SQL("_jsonb->'d'->{}").format(sql.Literal(str(int(metric)))))
        return sorted(
            (day_summary(date.fromisoformat(day), daily) for _, day, daily in rows if daily is not None),
            key=lambda summary: summary.day,
        )

    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        days = days_between(start, end)
        ids = [json.dumps(doc_id(user_id, day)) for user_id in user_ids for day in days]
        values = sql.SQL(", ").join(
            sql.SQL("(_jsonb->'d'->{}->>'value')::float8").format(sql.Literal(str(int(metric)))) for metric in metrics
        )
        # A slot reads a few hundred thousand documents of a handful of days: each day's text is parsed once.
        day_of = {day.isoformat(): day for day in days}
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        for user_id, day, *figures in self._rows(ids, values):
            for metric, value in zip(metrics, figures, strict=True):
                if value is not None:
                    found.setdefault(user_id, {}).setdefault(metric, {})[day_of[day]] = value
        return found

    def _rows(self, ids: list[str], columns: sql.Composable) -> list[tuple]:
        """(user id, date, *columns) of the documents with these ids (JSON strings)."""
        try:
            return self._rows_of_table(ids, columns)
        except psycopg2.errors.UndefinedTable:
            # The collection's table is gone (dropped, or renamed by another FerretDB): look it up again, once.
            self._table = None
            return self._rows_of_table(ids, columns)

    def _rows_of_table(self, ids: list[str], columns: sql.Composable) -> list[tuple]:
        rows: list[tuple] = []
        with self._cursor() as cursor:
            table = self._table_name(cursor)
            if table is None:
                return []
            query = sql.SQL(
                "SELECT _jsonb->>'user_id', _jsonb->>'date', {} FROM {}.{} WHERE (_jsonb->'_id') = ANY(%s::jsonb[])"
            ).format(columns, sql.Identifier(self._database), sql.Identifier(table))
            for offset in range(0, len(ids), IDS_PER_STATEMENT):
                cursor.execute(query, (ids[offset : offset + IDS_PER_STATEMENT],))
                rows += cursor.fetchall()
        return rows

    def _table_name(self, cursor) -> str | None:
        if self._table is None:
            self._table = table_of(cursor, self._database, self._collection)
        return self._table

    @contextlib.contextmanager
    def _cursor(self) -> Iterator:
        """A cursor on an idle connection of this reader's, or a new one while there are fewer than the maximum;
        otherwise it waits for one to come back."""
        if not self._free.acquire(timeout=self._timeout):
            raise psycopg2.pool.PoolError(f"no connection to FerretDB's PostgreSQL free within {self._timeout:.0f} s")
        try:
            try:
                connection = self._idle.pop()
            except IndexError:
                connection = self._connect()
            try:
                with connection.cursor() as cursor:
                    yield cursor
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                connection.close()
                raise
            finally:
                if self._closed:
                    connection.close()
                elif not connection.closed:
                    self._idle.append(connection)
        finally:
            self._free.release()

    def _connect(self):
        connection = psycopg2.connect(
            self._dsn,
            connect_timeout=max(1, round(self._timeout)),
            application_name="fittrack-store-reads",
            options=f"-c statement_timeout={int(self._timeout * 1000)}",
            # A peer that vanishes without a word is noticed, not waited on.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        # Each statement its own snapshot, and no transaction left open to hold FerretDB's DDL back.
        connection.autocommit = True
        return connection

    def close(self) -> None:
        self._closed = True  # connections in use are closed when they come back
        while self._idle:
            self._idle.pop().close()
