"""Schema 5 of the embedded database: one blob per source and local day instead of a row per minute.

A thirteenth of the space, and a write rewrites a few rows instead of one per
reading. Data moves, so this step is Python; the migrator (fittrack.core.adapters.sql.migrator)
runs it in one transaction with its version bump.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
from collections.abc import Iterator

from fittrack.core.adapters.minute_blob import decoded, encoded


def migrate(conn: sqlite3.Connection) -> None:
    """minute_values (a row per minute) becomes day_minutes (a blob per source and local day).

    Safe to run again: with minute_values gone there is nothing left to move,
    and a day already in day_minutes keeps its own values over the moved ones.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS day_minutes ("
        " user_id TEXT NOT NULL, metric INTEGER NOT NULL, local_date INTEGER NOT NULL, source TEXT NOT NULL,"
        " minutes BLOB NOT NULL, PRIMARY KEY (user_id, metric, local_date, source)) WITHOUT ROWID"
    )
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'minute_values'").fetchone():
        present = {
            tuple(key): blob
            for *key, blob in conn.execute("SELECT user_id, metric, local_date, source, minutes FROM day_minutes")
        }
        rows = conn.execute(
            "SELECT user_id, metric, local_date, source, minute, value FROM minute_values"
            " ORDER BY user_id, metric, local_date, source, minute"
        )

        def moved() -> Iterator[tuple]:
            # Streamed from the cursor: a large database need not fit in memory.
            for key, minutes in itertools.groupby(rows, key=operator.itemgetter(slice(0, 4))):
                values = {minute: value for *_, minute, value in minutes}
                values.update(decoded(present[key]) if key in present else {})
                yield (*key, encoded(values))

        conn.executemany(
            "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes) VALUES (?, ?, ?, ?, ?)",
            moved(),
        )
    conn.execute("DROP INDEX IF EXISTS minute_values_by_day")
    conn.execute("DROP INDEX IF EXISTS minute_values_by_minute")
    conn.execute("DROP TABLE IF EXISTS minute_values")
