"""The goal evaluator's bulk read of daily values, straight from the PostgreSQL table under FerretDB 1.x.

A slot evaluates up to a hundred thousand users at once, and needs one number
per user, metric and day. Through FerretDB that is a query per user (it hands
no `$in` to PostgreSQL) and about 0.25 ms of FerretDB's CPU per document it
decodes: minutes for a slot. PostgreSQL itself answers the same read from
FerretDB's own unique index on `(_jsonb->'_id')` with `= ANY(...)`, a few
thousand documents per statement, in seconds.

This reads FerretDB's storage format, which FerretDB does not promise to keep:
a document is a jsonb `_jsonb` column holding its fields plus a `$s` schema
key, in a table named in the `_ferretdb_database_metadata` table of the schema
named after the database (FerretDB 1.24, pinned in infra/ferretdb/go.mod). It
reads only top-level string fields and `d.<metric>.value`, and a test holds it
to the answers the MongoDB path gives. Any PostgreSQL error makes the store
fall back to that path. On a real MongoDB none of this is used: `$in` on
`_id` is served by MongoDB's own index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import date, timedelta

import psycopg2
from psycopg2 import sql

from core.adapters.ferretdb_indexes import table_of
from core.adapters.mongo_documents import doc_id
from core.domain.metrics import MetricKind

IDS_PER_STATEMENT = 5000


class FerretDBDailyValues:
    """Daily values of many users from one FerretDB collection's table; one connection, opened when needed."""

    def __init__(self, pg_dsn: str, database: str, collection: str) -> None:
        self._dsn = pg_dsn
        self._database = database
        self._collection = collection
        self._connection = None
        self._lock = threading.Lock()

    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        ids = [json.dumps(doc_id(user_id, day)) for user_id in user_ids for day in days]
        # A slot reads a few hundred thousand documents of a handful of days: each day's text is parsed once.
        day_of = {day.isoformat(): day for day in days}
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        for user_id, day, *figures in self._rows(ids, metrics):
            for metric, value in zip(metrics, figures, strict=True):
                if value is not None:
                    found.setdefault(user_id, {}).setdefault(metric, {})[day_of[day]] = value
        return found

    def _rows(self, ids: list[str], metrics: Sequence[MetricKind]) -> list[tuple]:
        """(user id, date, a value per metric) of the documents with these ids (JSON strings)."""
        values = sql.SQL(", ").join(
            sql.SQL("(_jsonb->'d'->{}->>'value')::float8").format(sql.Literal(str(int(metric)))) for metric in metrics
        )
        rows: list[tuple] = []
        with self._lock:
            try:
                with self._cursor() as cursor:
                    table = table_of(cursor, self._database, self._collection)
                    if table is None:
                        return []
                    query = sql.SQL(
                        "SELECT _jsonb->>'user_id', _jsonb->>'date', {} FROM {}.{}"
                        " WHERE (_jsonb->'_id') = ANY(%s::jsonb[])"
                    ).format(values, sql.Identifier(self._database), sql.Identifier(table))
                    for offset in range(0, len(ids), IDS_PER_STATEMENT):
                        cursor.execute(query, (ids[offset : offset + IDS_PER_STATEMENT],))
                        rows += cursor.fetchall()
            except psycopg2.Error:
                self._close()
                raise
        return rows

    def _cursor(self):
        if self._connection is None or self._connection.closed:
            self._connection = psycopg2.connect(self._dsn, connect_timeout=3, application_name="fittrack-evaluator")
            # Each statement its own snapshot, and no transaction left open to hold FerretDB's DDL back.
            self._connection.autocommit = True
        return self._connection.cursor()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._close()
