"""PostgreSQL indexes under FerretDB 1.x's tables, for the fields the metric store looks up by equality.

FerretDB 1.x keeps a collection as one PostgreSQL table of `_jsonb` documents
and hands only top-level equalities on scalars down to SQL, as
`_jsonb->$1 @> $2` with the field name as a bind parameter
(internal/backends/postgresql/query.go). The B-tree indexes FerretDB builds
for createIndexes cannot serve `@>`, so without more every query reads the
whole table. A GIN index with `jsonb_path_ops` on `(_jsonb->'<field>')`
serves it, provided the planner sees the field name: FerretDB runs its
statements as cached prepared statements, and a generic plan (which
PostgreSQL may switch to after five runs) knows no field name, so the
database must plan each run with its parameters: `plan_cache_mode =
force_custom_plan`, which ensure() sets on the database.

Nothing here is needed on a real MongoDB, where ordinary create_index calls
serve the same queries (fittrack/core/adapters/mongo.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)

# Any constant works as long as every Fittrack process uses the same one.
_INDEX_LOCK = 0x6674_6665_7272_6574  # "ftferret"
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")


def table_of(cursor, database: str, collection: str) -> str | None:
    """The table FerretDB keeps a collection in (in the schema named after its database); None if it has none."""
    cursor.execute("SELECT to_regclass(%s)", (f'"{database}"._ferretdb_database_metadata',))
    if cursor.fetchone()[0] is None:
        return None
    cursor.execute(
        sql.SQL("SELECT _jsonb->>'table' FROM {}._ferretdb_database_metadata WHERE _jsonb->>'_id' = %s").format(
            sql.Identifier(database)
        ),
        (collection,),
    )
    row = cursor.fetchone()
    return row[0] if row else None


@contextmanager
def building_paused(cursor) -> Iterator[None]:
    """Hold the index builders' lock on the cursor's connection, waiting for a build under way to end.

    For maintenance that must not overlap a build: a VACUUM waits for the lock CREATE INDEX CONCURRENTLY
    holds, while the build waits for the VACUUM's transaction to end, and PostgreSQL cancels one of them.
    """
    cursor.execute("SELECT pg_advisory_lock(%s)", (_INDEX_LOCK,))
    try:
        yield
    finally:
        cursor.execute("SELECT pg_advisory_unlock(%s)", (_INDEX_LOCK,))


def index_name(table: str, field: str) -> str:
    return f"{table}_ft_{field}"[:63]


class FerretDBIndexes:
    """Creates, idempotently, a GIN index per field on the tables behind FerretDB collections of one database."""

    def __init__(self, pg_dsn: str, database: str, collections: Mapping[str, Sequence[str]]) -> None:
        for field in (field for fields in collections.values() for field in fields):
            if not _FIELD.fullmatch(field):
                raise ValueError(f"field {field!r} is not a plain top-level field name")
        self._dsn = pg_dsn
        self._schema = database  # FerretDB 1.x keeps each database in a schema of the same name
        self._collections = {collection: tuple(fields) for collection, fields in collections.items()}

    def table(self, cursor, collection: str) -> str | None:
        """The collection's table, from FerretDB's metadata; None before the collection exists."""
        return table_of(cursor, self._schema, collection)

    def ensure(self, wait: bool = False) -> list[str]:
        """Create what is missing; the names of the indexes created. Several processes may run it at once:
        one builds, and the others return at once, or with `wait` wait for that build and then look again."""
        connection = psycopg2.connect(self._dsn, connect_timeout=3, application_name="fittrack-indexes")
        # CREATE INDEX CONCURRENTLY runs outside a transaction, and leaves FerretDB's writes unblocked.
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                self._plan_with_parameters(cursor)
                if wait:
                    cursor.execute("SELECT pg_advisory_lock(%s)", (_INDEX_LOCK,))
                else:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (_INDEX_LOCK,))
                if not wait and not cursor.fetchone()[0]:
                    return []  # another process is building them; the next upkeep looks again
                try:
                    created = []
                    for collection, fields in self._collections.items():
                        # None before the collection's first document: the next upkeep looks again.
                        if (table := self.table(cursor, collection)) is not None:
                            created += [name for field in fields if (name := self._ensure_one(cursor, table, field))]
                    return created
                finally:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (_INDEX_LOCK,))
        finally:
            connection.close()

    def _plan_with_parameters(self, cursor) -> None:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = current_database() AND s.setrole = 0"
            " AND 'plan_cache_mode=force_custom_plan' = ANY (s.setconfig))"
        )
        if cursor.fetchone()[0]:
            return
        cursor.execute("SELECT current_database()")
        database = cursor.fetchone()[0]
        # New connections get it; FerretDB's launcher also asks for it in its connection URL (infra/services.sh).
        cursor.execute(
            sql.SQL("ALTER DATABASE {} SET plan_cache_mode = force_custom_plan").format(sql.Identifier(database))
        )

    def _ensure_one(self, cursor, table: str, field: str) -> str | None:
        name = index_name(table, field)
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (self._schema, name),
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            return None
        if row is not None:
            # A concurrent build that failed leaves an invalid index behind; it serves nothing.
            cursor.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(*_identifiers(self._schema, name)))
        cursor.execute(
            sql.SQL(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {}.{} USING gin ((_jsonb -> {}) jsonb_path_ops)"
            ).format(sql.Identifier(name), sql.Identifier(self._schema), sql.Identifier(table), sql.Literal(field))
        )
        log.info("created index %s on FerretDB's table %s.%s (%s)", name, self._schema, table, field)
        return name


def _identifiers(*names: str):
    return [sql.Identifier(name) for name in names]
