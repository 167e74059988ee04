"""Day documents for the store benchmarks, in the metric store's own layout, bulk-inserted.

A user's year of days in the `metrics` collection, which views, reports and
goal checks read: each document holds the daily figures of steps and calories
from a watch (fittrack/core/adapters/mongo_layout.py). Writing them through the persister
would take hours at a million documents; inserting the documents it would
have written measures the reads the same way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg2

from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes, building_paused, table_of
from fittrack.core.adapters.mongo_documents import doc_id, escape_source, month_key
from fittrack.core.adapters.mongo_layout import COLLECTION, EQUALITY_FIELDS

DAYS_PER_USER = 365
LAST_DAY = date(2026, 11, 30)
FIRST_DAY = LAST_DAY - timedelta(days=DAYS_PER_USER - 1)
CHUNK = 1000


def day_document(user_id: str, day: date, rng: random.Random) -> dict:
    minutes = rng.randint(300, 900)
    steps = float(minutes * rng.randint(20, 60))
    calories = round(steps * 0.04 + 1500, 1)
    watch = escape_source("watch")
    return {
        "_id": doc_id(user_id, day),
        "user_id": user_id,
        "date": day.isoformat(),
        "um": month_key(user_id, day),
        "d": {
            "1": {
                "value": steps,
                "min": 1.0,
                "max": 140.0,
                "minutes": minutes,
                "sources": {watch: {"value": steps, "minutes": minutes}},
            },
            "2": {
                "value": calories,
                "min": 0.5,
                "max": 9.0,
                "minutes": 1440,
                "sources": {watch: {"value": calories, "minutes": 1440}},
            },
        },
    }


def user_ids(count: int, prefix: str = "bench-user") -> list[str]:
    return [f"{prefix}-{n:07d}" for n in range(count)]


def documents(users: list[str], last_day: date = LAST_DAY, seed: int = 7) -> Iterator[list[dict]]:
    """Every day of every user's year ending on `last_day`, CHUNK documents at a time."""
    rng = random.Random(seed)
    first_day = last_day - timedelta(days=DAYS_PER_USER - 1)
    chunk: list[dict] = []
    for user_id in users:
        for n in range(DAYS_PER_USER):
            chunk.append(day_document(user_id, first_day + timedelta(days=n), rng))
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def load(collection, users: list[str], last_day: date = LAST_DAY) -> int:
    """Insert the users' years; how many documents went in."""
    inserted = 0
    for chunk in documents(users, last_day):
        collection.insert_many(chunk, ordered=False)
        inserted += len(chunk)
    return inserted


def settle(pg_dsn: str, database: str) -> None:
    """After a bulk load into FerretDB: the store's indexes, as the persister's upkeep makes them within a
    minute, and what autovacuum does soon after (measured while it works through a fresh load, reads take
    twice as long): the visibility map and the planner's statistics."""
    FerretDBIndexes(pg_dsn, database, EQUALITY_FIELDS).ensure(wait=True)
    connection = psycopg2.connect(pg_dsn, connect_timeout=5)
    connection.autocommit = True
    try:
        # The persisters' upkeep may start its own build meanwhile; the two would deadlock.
        with connection.cursor() as cursor, building_paused(cursor):
            cursor.execute(f'VACUUM (ANALYZE) "{database}"."{table_of(cursor, database, COLLECTION)}"')
    finally:
        connection.close()
