"""The metric store on FerretDB at scale: every query through a PostgreSQL index, no wedge, a watchdog behind it.

Against the FerretDB and PostgreSQL that `make services` runs; never skipped.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import threading
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest
from pymongo import MongoClient, UpdateOne
from pymongo.errors import PyMongoError

from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes, building_paused, index_name
from fittrack.core.adapters.ferretdb_reads import FerretDBReads
from fittrack.core.adapters.mongo import MongoMetricStore
from fittrack.core.adapters.mongo_documents import month_key
from fittrack.core.adapters.mongo_layout import COLLECTION, EQUALITY_FIELDS, MINUTES_COLLECTION
from fittrack.core.domain.aggregation import DaySummary, SourceFigures
from fittrack.core.domain.metrics import MetricKind, PlacedReading
from tests.production import ROOT, service_settings
from tests.support import eventually

pytestmark = pytest.mark.production

STEPS, CALORIES = MetricKind.STEPS, MetricKind.CALORIES_BURNED
LAUNCHER = ROOT / "var" / "bin" / "ferretdb-launcher"
# Enough documents that a sequential scan costs the planner more than the index.
USERS, DAYS = 40, 120
FIRST_DAY = date(2026, 1, 1)


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    found = service_settings()
    if not found.get("FITTRACK_FERRETDB_PG_DSN"):
        pytest.fail("var/services.env names no FITTRACK_FERRETDB_PG_DSN: run `make services`", pytrace=False)
    return found


@pytest.fixture(scope="module")
def database(settings):
    name = f"ft_index_{secrets.token_hex(4)}"
    client = MongoClient(settings["FITTRACK_MONGO_URI"], serverSelectionTimeoutMS=5000)
    yield client, name
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="module")
def store(settings, database):
    client, name = database
    indexes = FerretDBIndexes(settings["FITTRACK_FERRETDB_PG_DSN"], name, EQUALITY_FIELDS)
    store = MongoMetricStore(settings["FITTRACK_MONGO_URI"], name, "primary", ferretdb_indexes=indexes)
    store.ensure_indexes()
    # Documents in the store's own shape, bulk-inserted: USERS users with DAYS days each.
    client[name][COLLECTION].insert_many(
        [
            {
                "_id": f"user{u}:{day.isoformat()}",
                "user_id": f"user{u}",
                "date": day.isoformat(),
                "um": month_key(f"user{u}", day),
                "d": {"1": {"value": float(u), "min": 1.0, "max": 1.0, "minutes": 1, "sources": {}}},
            }
            for u in range(USERS)
            for day in (FIRST_DAY + timedelta(days=n) for n in range(DAYS))
        ]
    )
    # And as many days' minutes, in their own collection; one day of them written by the store itself.
    client[name][MINUTES_COLLECTION].insert_many(
        [
            {"_id": f"other{u}:{n}", "user_id": f"other{u}", "date": "2026-01-01", "b": {"1": {"watch": b"\0" * 12}}}
            for u in range(USERS)
            for n in range(DAYS)
        ]
    )
    store.upsert_minutes("user1", "watch", [PlacedReading(STEPS, 29_500_000, 10.0, date(2026, 2, 1))])
    store.ensure_indexes()  # the tables exist now
    yield store
    store.close()


@pytest.fixture
def pg(settings, database):
    connection = psycopg2.connect(settings["FITTRACK_FERRETDB_PG_DSN"], connect_timeout=5)
    connection.autocommit = True
    yield connection
    connection.close()


def table_of(pg, name: str, collection: str = COLLECTION) -> str:
    with pg.cursor() as cursor:
        table = FerretDBIndexes("", name, {}).table(cursor, collection)
    assert table, "FerretDB has no table for the collection"
    return table


def indexes_on(pg, schema: str, table: str) -> set[str]:
    with pg.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema, table))
        return {row[0] for row in cursor.fetchall()}


def plan_of(pg, schema: str, table: str, field: str, value: str, mode: str = "force_custom_plan") -> str:
    """The plan of the statement FerretDB 1.x sends for {field: value}, run as it runs it: prepared, many times."""
    with pg.cursor() as cursor:
        cursor.execute(f"SET plan_cache_mode = {mode}")
        statement = f"q{secrets.token_hex(3)}"
        cursor.execute(
            f'PREPARE {statement} (text, jsonb) AS SELECT _jsonb FROM "{schema}"."{table}" WHERE _jsonb->$1 @> $2'
        )
        for _ in range(7):  # past the five runs after which PostgreSQL may choose a generic plan
            cursor.execute(f"EXECUTE {statement} (%s, %s)", (field, f'"{value}"'))
        cursor.execute(f"EXPLAIN EXECUTE {statement} (%s, %s)", (field, f'"{value}"'))
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"DEALLOCATE {statement}")
        return plan


def scans(pg, schema: str, table: str) -> tuple[int, int]:
    """Sequential and index scans of the table so far; this connection's own counts are published first."""
    with pg.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = %s",
            (schema, table),
        )
        return cursor.fetchone()


def test_each_equality_the_store_queries_by_is_served_by_a_gin_index(store, database, pg):
    _, name = database
    for collection, fields in EQUALITY_FIELDS.items():
        table = table_of(pg, name, collection)
        assert {index_name(table, field) for field in fields} <= indexes_on(pg, name, table)
    table = table_of(pg, name)
    with pg.cursor() as cursor:
        cursor.execute(f'ANALYZE "{name}"."{table}"')
    for field, value in (("_id", "user7:2026-02-03"), ("um", "user7:2026-02"), ("user_id", "user7")):
        plan = plan_of(pg, name, table, field, value)
        assert f"Bitmap Index Scan on {index_name(table, field)}" in plan, plan
        assert "Seq Scan" not in plan, plan
    # Why the database plans each run with its parameters: a generic plan knows no field name.
    assert "Seq Scan" in plan_of(pg, name, table, "_id", "user7:2026-02-03", mode="force_generic_plan")


def test_the_stores_own_queries_through_ferretdb_scan_no_table(store, database, pg):
    _, name = database
    tables = [table_of(pg, name), table_of(pg, name, MINUTES_COLLECTION)]
    with pg.cursor() as cursor:
        for table in tables:
            cursor.execute(f'ANALYZE "{name}"."{table}"')
    before = [scans(pg, name, table) for table in tables]
    users = [f"user{u}" for u in range(10)]
    runs = 20  # well past the five runs after which PostgreSQL may plan a prepared statement without its parameters
    for _ in range(runs):
        assert len(store.days("user3", STEPS, date(2026, 2, 20), date(2026, 3, 10))) == 19
        assert len(store.days("user3", STEPS, date(2026, 2, 20), date(2026, 2, 20))) == 1
        totals = store.daily_totals(users, [STEPS], date(2026, 3, 2), date(2026, 3, 8))
        assert {user: len(days[STEPS]) for user, days in totals.items()} == {user: 7 for user in users}
        assert set(store.daily_totals(users, [STEPS], date(2026, 3, 2), date(2026, 3, 2))) == set(users)
        assert store.minutes_of_day("user1", STEPS, date(2026, 2, 1)) == {"watch": {29_500_000: 10.0}}
    # Two months, a day, ten months, ten days; a day's minutes.
    queries = [runs * (2 + 1 + 10 + 10), runs * 1]
    for table, (_, idx_before), count in zip(tables, before, queries, strict=True):
        # FerretDB's connections publish their counts within seconds: wait for the index scans, then read both.
        eventually(lambda t=table: scans(pg, name, t), lambda c, b=idx_before, n=count: c[1] - b >= n, timeout=30)
    # A generic plan would scan a table for at least 15 of the 20 runs. A few scans may show late: those the
    # module's set-up made, on tables not analyzed yet, by FerretDB connections that publish within 10 s.
    for table, (seq_before, _) in zip(tables, before, strict=True):
        assert scans(pg, name, table)[0] - seq_before <= 5


def test_a_table_ferretdb_creates_again_gets_its_indexes_back(settings, store, database, pg):
    client, name = database
    scratch = f"{name}_again"
    indexes = FerretDBIndexes(settings["FITTRACK_FERRETDB_PG_DSN"], scratch, EQUALITY_FIELDS)
    again = MongoMetricStore(settings["FITTRACK_MONGO_URI"], scratch, "primary", ferretdb_indexes=indexes)
    try:
        again.save_days("u1", STEPS, [DaySummary(date(2026, 3, 1), 5.0, 5.0, 5.0, 1)])
        again.ensure_indexes()
        first = table_of(pg, scratch)
        client[scratch].drop_collection(COLLECTION)
        again.save_days("u1", STEPS, [DaySummary(date(2026, 3, 1), 6.0, 6.0, 6.0, 1)])
        table = table_of(pg, scratch)
        assert table == first  # the same name, but a new, bare table
        assert not {index_name(table, field) for field in EQUALITY_FIELDS[COLLECTION]} & indexes_on(pg, scratch, table)
        again.ensure_indexes()  # what the persister's upkeep calls
        assert {index_name(table, field) for field in EQUALITY_FIELDS[COLLECTION]} <= indexes_on(pg, scratch, table)
        assert [d.value for d in again.days("u1", STEPS, date(2026, 3, 1), date(2026, 3, 2))] == [6.0]
    finally:
        again.close()
        client.drop_database(scratch)


def test_maintenance_waits_for_a_build_under_way_instead_of_deadlocking_with_it(settings, database, pg):
    """A VACUUM overlapping a persister's CREATE INDEX CONCURRENTLY makes PostgreSQL cancel one of them (a
    deadlock, seen in CI): maintenance holds the builders' lock, and a build that must happen waits for it."""
    client, name = database
    scratch = f"{name}_paused"
    client[scratch][COLLECTION].insert_one({"_id": "u1:2026-03-01", "user_id": "u1", "date": "2026-03-01"})
    indexes = FerretDBIndexes(settings["FITTRACK_FERRETDB_PG_DSN"], scratch, EQUALITY_FIELDS)
    maintenance = psycopg2.connect(settings["FITTRACK_FERRETDB_PG_DSN"], connect_timeout=5)
    maintenance.autocommit = True
    created: list[str] = []
    try:
        with maintenance.cursor() as cursor, building_paused(cursor):
            assert indexes.ensure() == []  # a persister's upkeep skips this round and looks again later
            waiting = threading.Thread(target=lambda: created.extend(indexes.ensure(wait=True)))
            waiting.start()
            eventually(
                lambda: advisory_waiters(pg),
                lambda count: count == 1,
                timeout=10,
            )
            assert not created
        waiting.join(timeout=30)
        table = table_of(pg, scratch)
        assert sorted(created) == sorted(index_name(table, field) for field in EQUALITY_FIELDS[COLLECTION])
    finally:
        maintenance.close()
        client.drop_database(scratch)


def advisory_waiters(pg) -> int:
    with pg.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def test_a_persister_chunk_touching_many_days_is_written_in_commands_ferretdbs_pool_can_serve(store):
    # 120 day documents in one group: sent as one command, FerretDB 1.24 held 50 connections and hung for ever.
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(120)]
    for value in (1.0, 2.0):  # creating them, then updating every one
        with store.grouped():
            store.save_days("chunky", STEPS, [DaySummary(day, value, value, value, 1) for day in days])
        assert [d.value for d in store.days("chunky", STEPS, days[0], days[-1])] == [value] * 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(uri: str) -> bool:
    client = MongoClient(uri, serverSelectionTimeoutMS=500, socketTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def test_the_launchers_watchdog_restarts_a_wedged_ferretdb_and_keeps_its_goroutine_dump(settings, tmp_path: Path):
    # A FerretDB of its own with a pool of 4 connections, wedged on purpose by one command of 6 updates.
    port = free_port()
    pg_url = settings["FITTRACK_FERRETDB_PG_DSN"].replace("postgresql://", "postgres://", 1)
    process = subprocess.Popen(
        [
            str(LAUNCHER),
            "-listen",
            f"127.0.0.1:{port}",
            "-postgresql-url",
            f"{pg_url}?sslmode=disable&pool_max_conns=4",
            "-watchdog",
            "500ms",
            "-dump-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "ferretdb.log", "wb"),  # noqa: SIM115 - the process owns it
    )
    uri = f"mongodb://127.0.0.1:{port}/"
    name = f"ft_wedge_{secrets.token_hex(4)}"
    try:
        eventually(lambda: answers(uri), bool, timeout=30, interval=0.2)
        # The watchdog counts misses only once a ping of its own was answered: wedging FerretDB before
        # that (a busy machine) would leave it waiting for a first answer for good.
        log = tmp_path / "ferretdb.log"
        eventually(lambda: "watchdog: armed" in log.read_text(errors="replace"), bool, timeout=30, interval=0.2)
        client = MongoClient(uri, serverSelectionTimeoutMS=3000, socketTimeoutMS=3000)
        collection = client[name]["docs"]
        collection.insert_many([{"_id": n, "v": 0} for n in range(6)])
        with pytest.raises(PyMongoError):
            collection.bulk_write([UpdateOne({"_id": n}, {"$set": {"v": 1}}) for n in range(6)], ordered=False)
        client.close()
        dumps = eventually(lambda: list(tmp_path.glob("ferretdb-wedged-*.goroutines")), bool, timeout=30)
        assert "pgxpool" in dumps[0].read_text()  # every request waits for a pooled connection
        eventually(lambda: answers(uri), bool, timeout=30, interval=0.2)
        assert process.poll() is None  # the same process, started afresh
        assert MongoClient(uri, serverSelectionTimeoutMS=3000)[name]["docs"].count_documents({}) == 6
    finally:
        if answers(uri):
            MongoClient(uri, serverSelectionTimeoutMS=1000).drop_database(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_evaluators_bulk_read_from_ferretdbs_table_gives_what_the_mongodb_path_gives(settings, store, database):
    _, name = database
    uri, dsn = settings["FITTRACK_MONGO_URI"], settings["FITTRACK_FERRETDB_PG_DSN"]
    store.save_days("sparse", CALORIES, [DaySummary(date(2026, 3, 3), 2100.0, 1.0, 9.0, 1440)])
    users = ["user1", "user2", "sparse", "nobody"]
    span = (date(2026, 2, 26), date(2026, 3, 4))
    through_sql = FerretDBReads(dsn, name, COLLECTION)
    # The same store with its read through SQL, with a PostgreSQL it cannot reach (it falls back), and without.
    stores = [
        MongoMetricStore(uri, name, "primary", ferretdb_reads=values)
        for values in (through_sql, FerretDBReads("postgresql://fittrack@127.0.0.1:1/x", name, COLLECTION), None)
    ]
    try:
        answers = []
        for each in stores:
            each.ensure_indexes()
            answers.append(each.daily_totals(users, [STEPS, CALORIES], *span))
        assert answers[0] == answers[1] == answers[2]
        assert answers[0]["user1"][STEPS] == {span[0] + timedelta(days=n): 1.0 for n in range(7)}
        assert answers[0]["sparse"] == {CALORIES: {date(2026, 3, 3): 2100.0}}
        assert "nobody" not in answers[0]
    finally:
        for each in stores:
            each.close()


def btree_scans(pg, schema: str, table: str) -> int:
    """Scans so far of FerretDB's own btree index on `_id`: only `=` reaches it, which FerretDB never sends."""
    with pg.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT coalesce(sum(s.idx_scan), 0) FROM pg_stat_user_indexes s JOIN pg_indexes i"
            " ON i.schemaname = s.schemaname AND i.indexname = s.indexrelname"
            " WHERE s.schemaname = %s AND s.relname = %s AND i.indexdef LIKE '%%USING btree%%'",
            (schema, table),
        )
        return int(cursor.fetchone()[0])


def test_a_views_days_read_from_ferretdbs_table_are_what_the_mongodb_path_reads(settings, pg):
    uri, dsn = settings["FITTRACK_MONGO_URI"], settings["FITTRACK_FERRETDB_PG_DSN"]
    name = f"ft_days_{secrets.token_hex(4)}"  # its own database: this test drops its collection
    sources = (SourceFigures("phone", 900.0, 30), SourceFigures("watch v2.1 (left)", 1100.0, 45))
    saved = [
        DaySummary(date(2026, 4, 29), 2000.0, 0.0, 120.0, 75, sources),
        DaySummary(date(2026, 5, 2), 7.0, 1.0, 3.0, 4, ()),
    ]
    reads = FerretDBReads(dsn, name, COLLECTION)
    through_sql = MongoMetricStore(uri, name, "primary", ferretdb_reads=reads)
    unreachable = FerretDBReads("postgresql://fittrack@127.0.0.1:1/x", name, COLLECTION, timeout_seconds=1)
    falling_back = MongoMetricStore(uri, name, "primary", ferretdb_reads=unreachable)
    through_mongodb = MongoMetricStore(uri, name, "primary")
    stores = (through_sql, falling_back, through_mongodb)
    client = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        for each in stores:
            each.ensure_indexes()
        through_mongodb.save_days("viewer", STEPS, saved)
        span = ("viewer", STEPS, date(2026, 4, 27), date(2026, 5, 3))  # a week across a month's end
        table = table_of(pg, name)
        before = btree_scans(pg, name, table)
        assert [each.days(*span) for each in stores] == [saved] * 3
        # The store's read went to PostgreSQL by FerretDB's btree index on _id, not through FerretDB.
        eventually(lambda: btree_scans(pg, name, table), lambda scans: scans > before, timeout=30)
        assert through_sql.days("viewer", CALORIES, date(2026, 4, 27), date(2026, 5, 3)) == []
        assert through_sql.days("nobody", STEPS, date(2026, 4, 27), date(2026, 5, 3)) == []

        # A dropped and re-created collection: the next read answers from the new table at once.
        client[name].drop_collection(COLLECTION)
        through_mongodb.save_days("viewer", STEPS, saved[1:])
        assert reads.days(*span) == saved[1:]
    finally:
        for each in stores:
            each.close()
        client.drop_database(name)
        client.close()
