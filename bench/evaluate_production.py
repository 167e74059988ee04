"""bench/evaluate --profile production: one evaluation slot on PostgreSQL, FerretDB and Kafka (bench/evaluate.py)."""

from __future__ import annotations

import random
import time as clock
from datetime import UTC, datetime, timedelta

import psycopg2
from psycopg2.extras import execute_values
from pymongo import MongoClient

from bench.common import emit
from bench.days import settle
from bench.evaluate import TODAY, ZONES, CountingQueue, slot_figures, time_slot
from bench.production import unavailable
from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
from fittrack.core.adapters.ferretdb_reads import FerretDBReads
from fittrack.core.adapters.kafka import ensure_topics, make_producer
from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue
from fittrack.core.adapters.mongo import MongoMetricStore
from fittrack.core.adapters.mongo_documents import doc_id, month_key
from fittrack.core.adapters.mongo_layout import COLLECTION, EQUALITY_FIELDS
from fittrack.core.adapters.postgres import PostgresDatabase
from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
from fittrack.core.domain.metrics import MetricKind
from tests.production import ProductionStack

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def week_days() -> list:
    monday = TODAY - timedelta(days=TODAY.weekday())
    return [monday + timedelta(days=n) for n in range((TODAY - monday).days + 1)]


def seed(env: dict[str, str], users: int, rng: random.Random) -> tuple[int, int]:
    """Users and goals in PostgreSQL, their week's day documents in FerretDB; (goals, documents)."""
    ids = [f"{n:032x}" for n in range(1, users + 1)]
    connection = psycopg2.connect(env["FITTRACK_PG_DSN"])
    try:
        with connection, connection.cursor() as cursor:
            execute_values(
                cursor,
                "INSERT INTO users (user_id, username, time_zone, created_at) VALUES %s",
                [(user_id, f"bench{n}", ZONES[n % len(ZONES)], CREATED) for n, user_id in enumerate(ids)],
                page_size=5000,
            )
            goals = [(f"s{user_id[1:]}", user_id, 1, 1, 10_000.0) for user_id in ids]
            goals += [(f"c{user_id[1:]}", user_id, 2, 2, 14_000.0) for user_id in ids[::2]]
            execute_values(
                cursor,
                "INSERT INTO goals (goal_id, user_id, metric, period, target, active, created_at, updated_at, notify)"
                " VALUES %s",
                [(*goal, True, CREATED, CREATED, True) for goal in goals],
                page_size=5000,
            )
            cursor.execute("ANALYZE")
    finally:
        connection.close()
    documents = 0
    client = MongoClient(env["FITTRACK_MONGO_URI"])
    try:
        collection = client[env["FITTRACK_MONGO_DATABASE"]][COLLECTION]
        chunk = []
        for user_id in ids:
            if rng.random() < 0.2:
                continue  # no readings this week
            for day in week_days():
                steps, calories = float(rng.randint(0, 12_000)), float(rng.randint(0, 2_600))
                chunk.append(
                    {
                        "_id": doc_id(user_id, day),
                        "user_id": user_id,
                        "date": day.isoformat(),
                        "um": month_key(user_id, day),
                        "d": {
                            "1": {"value": steps, "min": 0.0, "max": 0.0, "minutes": 1, "sources": {}},
                            "2": {"value": calories, "min": 0.0, "max": 0.0, "minutes": 1, "sources": {}},
                        },
                    }
                )
            if len(chunk) >= 1000:
                collection.insert_many(chunk, ordered=False)
                documents += len(chunk)
                chunk = []
        if chunk:
            collection.insert_many(chunk, ordered=False)
            documents += len(chunk)
    finally:
        client.close()
    return len(goals), documents


def anchor(env: dict[str, str]) -> float:
    """The reads alone, in plain SQL: each zone's notified goals, their owners' preferences and week of values."""
    values = FerretDBReads(env["FITTRACK_FERRETDB_PG_DSN"], env["FITTRACK_MONGO_DATABASE"], COLLECTION)
    connection = psycopg2.connect(env["FITTRACK_PG_DSN"])
    started = clock.perf_counter()
    try:
        with connection.cursor() as cursor:
            for zone in ZONES:
                cursor.execute(
                    "SELECT g.goal_id, g.user_id, g.metric, g.period, g.target FROM goals g JOIN users u"
                    " ON u.user_id = g.user_id WHERE u.time_zone = %s AND g.active AND g.notify ORDER BY g.user_id",
                    (zone,),
                )
                ids = sorted({row[1] for row in cursor.fetchall()})
                for offset in range(0, len(ids), 2000):
                    page = ids[offset : offset + 2000]
                    cursor.execute("SELECT * FROM notification_preferences WHERE user_id = ANY(%s)", (page,))
                    cursor.fetchall()
                    days = week_days()
                    values.daily_totals(page, [MetricKind.STEPS, MetricKind.CALORIES_BURNED], days[0], days[-1])
    finally:
        connection.close()
        values.close()
    return clock.perf_counter() - started


def run_production(options) -> int:
    figures: dict = {"bench": "evaluate", "profile": "production"}
    if reason := unavailable():
        emit({**figures, "skipped": reason})
        return 0
    stack = ProductionStack.create("beval")
    env = stack.env
    db = store = queue = None
    try:
        db = PostgresDatabase(env["FITTRACK_PG_DSN"], pool_max=4)
        db.migrate()
        dsn, database = env["FITTRACK_FERRETDB_PG_DSN"], env["FITTRACK_MONGO_DATABASE"]
        # As the evaluator process builds it (fittrack/core/bootstrap.metric_store), before the first document.
        store = MongoMetricStore(
            env["FITTRACK_MONGO_URI"],
            database,
            "primary",
            ferretdb_indexes=FerretDBIndexes(dsn, database, EQUALITY_FIELDS),
            ferretdb_reads=FerretDBReads(dsn, database, COLLECTION),
        )
        store.ensure_indexes()
        started = clock.perf_counter()
        goals, documents = seed(env, options.users, random.Random(options.seed))
        settle(dsn, database)
        figures["seed_s"] = round(clock.perf_counter() - started, 1)
        anchor_seconds = anchor(env)
        if options.no_outbox:
            queue = CountingQueue()
        else:
            topic = env["FITTRACK_NOTIFICATIONS_TOPIC"]
            ensure_topics(env["FITTRACK_KAFKA_BOOTSTRAP"], {topic: 2}, 1)
            queue = KafkaNotificationQueue(lambda: make_producer(env["FITTRACK_KAFKA_BOOTSTRAP"], 10.0), topic)
        summary, seconds = time_slot(
            lambda: PostgresUnitOfWork(db, read_only=True), lambda: PostgresUnitOfWork(db), store, queue
        )
        queue_name = "counting" if options.no_outbox else "kafka"
        figures.update(slot_figures(summary, goals, queue_name, seconds, anchor_seconds))
        figures["documents"] = documents
    except Exception as error:  # noqa: BLE001 - one JSON line even when it fails
        figures["error"] = f"{type(error).__name__}: {error}"
    finally:
        for part in (queue, store, db):
            if part is not None and hasattr(part, "close"):
                part.close()
        stack.destroy()
    emit(figures)
    return 1 if "error" in figures or figures.get("users") != options.users else 0
