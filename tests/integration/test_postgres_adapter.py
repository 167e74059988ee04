"""The PostgreSQL account adapter against a real server: schema, contract, and behaviour in outages.

The account contract checks, which every backend must pass, are in tests/contract; what is here is
PostgreSQL's own: its schema's constraints, migrations, locking, and what happens when it goes away.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from pymongo import MongoClient

from fittrack.app import migrate as migrate_command
from fittrack.core.adapters.postgres import (
    MIGRATIONS_DIR,
    UNAVAILABLE,
    Busy,
    PostgresDatabase,
)
from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
from fittrack.core.adapters.postgres_devices import PostgresBatchClaims, PostgresDeviceCursors
from fittrack.core.adapters.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
from fittrack.core.domain.accounts import Credentials, Profile, Sex, User
from fittrack.core.domain.errors import AlreadyExists, Unavailable
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.sequences import DeviceCursor, LogPosition
from fittrack.core.ports import RefreshRecord
from tests.contract import builders
from tests.forwarder import Forwarder
from tests.production import service_settings
from tests.support import eventually

pytestmark = pytest.mark.production

T0 = builders.T0


@pytest.fixture
def uow(pg_empty):
    return lambda: PostgresUnitOfWork(pg_empty)


# --- helpers -------------------------------------------------------------------------


def rejected(conn, sql: str, args=None) -> type[psycopg2.Error]:
    """The class of error the database raises for `sql`; the rest of the transaction stays usable."""
    with conn.cursor() as cursor:
        cursor.execute("SAVEPOINT attempt")
        try:
            cursor.execute(sql, args)
        except psycopg2.Error as error:
            cursor.execute("ROLLBACK TO SAVEPOINT attempt")
            return type(error)
    raise AssertionError(f"the database accepted {sql!r} {args!r}")


def insert_user(conn, user_id: str = "u1", username: str = "alice") -> None:
    with conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (user_id, username, created_at) VALUES (%s, %s, now());"
            " INSERT INTO user_metric (user_id) VALUES (%s)",
            (user_id, username, user_id),
        )


def terminate_backends(dsn: str) -> int:
    """End every adapter connection to the database, as a server restart or a network cut would."""
    conn = psycopg2.connect(dsn, connect_timeout=3)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            # The timeout makes the call wait until the backends are gone, so none can still answer.
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'fittrack'"
            )
            return cursor.fetchone()[0]
    finally:
        conn.close()


def applied_versions(dsn: str) -> list[int]:
    conn = psycopg2.connect(dsn, connect_timeout=3)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def add_user(database: PostgresDatabase, user_id: str = "u1", username: str = "alice") -> None:
    with PostgresUnitOfWork(database) as unit:
        unit.users.add(*builders.user(user_id, username))
        unit.commit()


# --- migrations ----------------------------------------------------------------------

LATEST = len(list(MIGRATIONS_DIR.glob("*.sql")))


def test_migrating_twice_applies_each_migration_once(pg_fresh_dsn):
    database = PostgresDatabase(pg_fresh_dsn, pool_max=1)
    try:
        assert database.migrate() == LATEST
        assert database.migrate() == LATEST
    finally:
        database.close()
    assert applied_versions(pg_fresh_dsn) == list(range(1, LATEST + 1))


def test_two_processes_migrating_at_once_apply_each_migration_once(pg_fresh_dsn):
    databases = [PostgresDatabase(pg_fresh_dsn, pool_max=1) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = databases[index].migrate()
        except Exception as error:  # reported by the assertion below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for database in databases:
        database.close()
    assert results == [LATEST, LATEST]
    assert applied_versions(pg_fresh_dsn) == list(range(1, LATEST + 1))


def test_fittrack_migrate_migrates_the_production_databases(pg_fresh_dsn, monkeypatch, capsys):
    mongo_uri = service_settings()["FITTRACK_MONGO_URI"]
    scratch = f"ft_migrate_{secrets.token_hex(4)}"
    client = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    # A day document from before month keys.
    client[scratch]["metrics"].insert_one({"_id": "u1:2026-06-10", "user_id": "u1", "date": "2026-06-10"})
    monkeypatch.setenv("FITTRACK_PROFILE", "production")
    monkeypatch.setenv("FITTRACK_PG_DSN", pg_fresh_dsn)
    # The production profile insists on every service being configured, though migrating needs no Kafka.
    monkeypatch.setenv("FITTRACK_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FITTRACK_MONGO_URI", mongo_uri)
    monkeypatch.setenv("FITTRACK_MONGO_DATABASE", scratch)
    try:
        assert migrate_command.main([]) == 0
        assert f"production database at schema version {LATEST}" in capsys.readouterr().out
        assert applied_versions(pg_fresh_dsn) == list(range(1, LATEST + 1))
        assert client[scratch]["metrics"].find_one({"_id": "u1:2026-06-10"})["um"] == "u1:2026-06"
    finally:
        client.drop_database(scratch)
        client.close()


def test_fittrack_migrate_migrates_the_embedded_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FITTRACK_PROFILE", "embedded")
    monkeypatch.setenv("FITTRACK_DATA_DIR", str(tmp_path / "var"))
    assert migrate_command.main([]) == 0
    assert f"embedded database at schema version {len(SQLITE_MIGRATIONS)}" in capsys.readouterr().out
    assert (tmp_path / "var" / "fittrack.sqlite3").is_file()


def test_fittrack_migrate_says_when_postgresql_is_down(monkeypatch, capsys):
    monkeypatch.setenv("FITTRACK_PROFILE", "production")
    monkeypatch.setenv("FITTRACK_PG_DSN", "postgresql://fittrack:s3cret@127.0.0.1:1/fittrack")
    monkeypatch.setenv("FITTRACK_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FITTRACK_MONGO_URI", "mongodb://127.0.0.1:1/")
    assert migrate_command.main([]) == 1
    captured = capsys.readouterr()
    assert UNAVAILABLE in captured.err
    assert "s3cret" not in captured.err + captured.out


# --- the schema enforces the domain's rules by itself --------------------------------


def test_the_database_keeps_usernames_unique_regardless_of_case(pg_raw):
    insert_user(pg_raw, "u1", "alice")
    assert rejected(pg_raw, "INSERT INTO users VALUES ('u2', 'ALICE', '', 'UTC', now())") is (
        psycopg2.errors.CheckViolation
    )
    # Without the CHECKs that keep usernames lower-case, the unique index on lower(username) still refuses it.
    with pg_raw.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE users DROP CONSTRAINT users_username_canonical, DROP CONSTRAINT users_username_charset"
        )
    assert rejected(pg_raw, "INSERT INTO users VALUES ('u2', 'ALICE', '', 'UTC', now())") is (
        psycopg2.errors.UniqueViolation
    )
    assert rejected(pg_raw, "INSERT INTO users VALUES ('u2', 'alice', '', 'UTC', now())") is (
        psycopg2.errors.UniqueViolation
    )


@pytest.mark.parametrize("username", ["al", "a" * 33, "al ice", "alice!", "élise"])
def test_the_database_refuses_a_username_the_domain_would_refuse(pg_raw, username):
    assert rejected(pg_raw, "INSERT INTO users VALUES ('u1', %s, '', 'UTC', now())", (username,)) is (
        psycopg2.errors.CheckViolation
    )


@pytest.mark.parametrize(
    "column, value",
    [
        ("height_cm", 49.9),
        ("height_cm", 272.1),
        ("weight_kg", 1.9),
        ("weight_kg", 650.1),
        ("stated_age", 0),
        ("stated_age", 131),
        ("sex", 4),
    ],
)
def test_the_database_refuses_biometrics_beyond_the_domain_limits(pg_raw, column, value):
    insert_user(pg_raw)
    sql = f"UPDATE user_metric SET {column} = %s WHERE user_id = 'u1'"
    assert rejected(pg_raw, sql, (value,)) is psycopg2.errors.CheckViolation


def test_the_database_refuses_both_a_birth_date_and_a_stated_age(pg_raw):
    insert_user(pg_raw)
    sql = "UPDATE user_metric SET birth_date = '1990-01-01', stated_age = 30 WHERE user_id = 'u1'"
    assert rejected(pg_raw, sql) is psycopg2.errors.CheckViolation


GOAL = "INSERT INTO goals VALUES (%s, %s, %s, %s, %s, true, now(), now())"


@pytest.mark.parametrize(
    "metric, period, target",
    [(1, 1, -5.0), (1, 1, 0.0), (1, 1, float("nan")), (1, 1, float("inf")), (5, 1, 10.0), (0, 1, 10.0), (1, 3, 10.0)],
)
def test_the_database_refuses_a_goal_the_domain_would_refuse(pg_raw, metric, period, target):
    insert_user(pg_raw)
    assert rejected(pg_raw, GOAL, ("g1", "u1", metric, period, target)) is psycopg2.errors.CheckViolation


def test_the_database_refuses_a_goal_of_a_user_that_does_not_exist(pg_raw):
    assert rejected(pg_raw, GOAL, ("g1", "nobody", 1, 1, 10.0)) is psycopg2.errors.ForeignKeyViolation


def test_the_database_refuses_a_second_goal_for_the_same_metric_and_period(pg_raw):
    insert_user(pg_raw)
    with pg_raw.cursor() as cursor:
        cursor.execute(GOAL, ("g1", "u1", 1, 1, 10.0))
    assert rejected(pg_raw, GOAL, ("g2", "u1", 1, 1, 20.0)) is psycopg2.errors.UniqueViolation


def test_the_database_refuses_a_second_notification_with_the_same_idempotency_key(pg_raw):
    insert_user(pg_raw)
    sql = (
        "INSERT INTO notifications (notification_id, user_id, kind, title, body, created_at, idempotency_key)"
        " VALUES (%s, 'u1', 1, 't', 'b', now(), 'k')"
    )
    with pg_raw.cursor() as cursor:
        cursor.execute(sql, ("n1",))
    assert rejected(pg_raw, sql, ("n2",)) is psycopg2.errors.UniqueViolation


# --- the adapter ---------------------------------------------------------------------


def test_a_user_profile_and_credentials_come_back_exactly_as_stored(uow):
    profile = Profile("Alice A.", 168.5, 61.25, date(1990, 2, 28), None, Sex.FEMALE, "Europe/Paris")
    paris = datetime(2026, 6, 10, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    credentials = Credentials("u1", b"\x00$2b$\xff binary", paris, T0 + timedelta(days=90))
    with uow() as unit:
        unit.users.add(User("u1", "alice", profile, T0), credentials)
        unit.commit()
    with uow() as unit:
        stored = unit.users.get("u1")
        assert stored == User("u1", "alice", profile, T0)
        assert stored.created_at.tzinfo == UTC
        assert unit.users.get_credentials("u1") == credentials
        assert unit.users.get_credentials("u1").created_at.tzinfo == UTC
        changed = Profile("", None, None, None, 40, Sex.OTHER, "UTC")
        unit.users.update_profile("u1", changed)
        unit.users.set_credentials(Credentials("u1", b"new", T0, None))
        unit.commit()
    with uow() as unit:
        assert unit.users.get_by_username("Alice").profile == changed
        assert unit.users.get_credentials("u1") == Credentials("u1", b"new", T0, None)


def test_already_exists_says_the_same_as_with_sqlite(uow, tmp_path):
    sqlite = SqliteDatabase(tmp_path / "same.sqlite3")
    sqlite.migrate()
    messages = []
    for factory in (uow, lambda: SqliteUnitOfWork(sqlite)):
        builders.add_user(factory)
        with factory() as unit:
            unit.goals.add(builders.goal("g1"))
            with pytest.raises(AlreadyExists) as taken:
                unit.users.add(*builders.user("u2", "ALICE"))
            with pytest.raises(AlreadyExists) as clash:
                unit.goals.add(builders.goal("g2"))
            messages.append((str(taken.value), str(clash.value)))
    sqlite.close()
    assert messages[0] == messages[1]
    assert messages[0] == (
        "username 'ALICE' is taken; choose another",
        "you already have a daily steps goal; update it instead",
    )


def test_a_unit_of_work_goes_on_after_already_exists_as_with_sqlite(uow):
    builders.add_user(uow)
    with uow() as unit:
        with pytest.raises(AlreadyExists):
            unit.users.add(*builders.user("u2", "alice"))
        unit.users.add(*builders.user("u2", "bob"))
        unit.commit()
    with uow() as unit:
        assert unit.users.get_by_username("bob").user_id == "u2"


def test_a_read_only_unit_of_work_reads_committed_data_and_cannot_write(pg_empty):
    add_user(pg_empty)
    with PostgresUnitOfWork(pg_empty, read_only=True) as unit:
        assert unit.users.get_by_username("alice").user_id == "u1"
        assert unit.sessions.get_refresh("nope") is None  # no FOR UPDATE in a read-only transaction
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            unit.users.add(*builders.user("u2", "bob"))


def test_a_unit_of_work_left_by_an_exception_keeps_nothing(uow):
    with pytest.raises(RuntimeError), uow() as unit:
        unit.users.add(*builders.user())
        raise RuntimeError("boom")
    with uow() as unit:
        assert unit.users.get("u1") is None


def test_a_refresh_token_read_for_rotation_is_locked_until_the_rotation_commits(pg_empty):
    add_user(pg_empty)
    with PostgresUnitOfWork(pg_empty) as unit:
        unit.sessions.create("s1", "u1", T0)
        unit.sessions.add_refresh(RefreshRecord("h1", "s1", "u1", T0 + timedelta(days=1), False))
        unit.commit()
    seen_by_second: list[RefreshRecord] = []

    def second_refresh() -> None:
        with PostgresUnitOfWork(pg_empty) as unit:
            seen_by_second.append(unit.sessions.get_refresh("h1"))

    with PostgresUnitOfWork(pg_empty) as first:
        assert not first.sessions.get_refresh("h1").used
        racer = threading.Thread(target=second_refresh)
        racer.start()
        time.sleep(0.3)
        assert seen_by_second == []  # waiting on the row lock
        first.sessions.mark_refresh_used("h1")
        first.commit()
    racer.join(timeout=10)
    assert [record.used for record in seen_by_second] == [True]


def test_a_goal_update_and_delete_are_kept(uow):
    builders.add_user(uow)
    with uow() as unit:
        unit.goals.add(builders.goal("g1"))
        unit.commit()
    later = T0 + timedelta(hours=1)
    with uow() as unit:
        unit.goals.update(Goal("g1", "u1", MetricKind.STEPS, GoalPeriod.DAILY, 5000.0, False, T0, later))
        unit.commit()
    with uow() as unit:
        assert unit.goals.get("g1") == Goal("g1", "u1", MetricKind.STEPS, GoalPeriod.DAILY, 5000.0, False, T0, later)
        unit.goals.delete("g1")
        unit.commit()
    with uow() as unit:
        assert unit.goals.get("g1") is None


def test_revoke_all_can_keep_the_callers_own_session(uow):
    builders.add_user(uow)
    with uow() as unit:
        for session_id in ("s1", "s2"):
            unit.sessions.create(session_id, "u1", T0)
        unit.sessions.revoke_all("u1", T0, keep="s2")
        unit.commit()
    with uow() as unit:
        assert (unit.sessions.is_active("s1"), unit.sessions.is_active("s2")) == (False, True)


# --- device cursors ------------------------------------------------------------------


def test_device_cursors_are_stored_and_loaded_per_user_and_source(pg_empty):
    for user_id, name in (("u1", "alice"), ("u2", "bob")):
        add_user(pg_empty, user_id, name)
    cursors = PostgresDeviceCursors(pg_empty)
    assert cursors.load([("u1", "watch")]) == {}
    cursors.save({("u1", "watch"): DeviceCursor(3, 0b10), ("u1", "phone"): DeviceCursor(1)})
    assert cursors.load([("u1", "watch"), ("u1", "phone"), ("u2", "watch")]) == {
        ("u1", "watch"): DeviceCursor(3, 0b10),
        ("u1", "phone"): DeviceCursor(1),
    }


def test_saving_a_cursor_merges_it_with_what_another_server_stored(pg_empty):
    add_user(pg_empty, "u1", "alice")
    cursors = PostgresDeviceCursors(pg_empty)
    cursors.save({("u1", "watch"): DeviceCursor().with_durable(5)})
    cursors.save({("u1", "watch"): DeviceCursor().with_durable(3).with_durable(4)})
    stored = cursors.load([("u1", "watch")])[("u1", "watch")]
    assert (stored.highest, stored.missing()) == (5, [1, 2])


def test_evaluators_claiming_the_same_work_at_the_same_moment_get_it_once(pg_empty):
    """Several evaluator processes share the work: a key raced for by four at once goes to one."""
    holders = [f"evaluator{n}" for n in range(4)]  # the test pool's connections
    start = threading.Barrier(len(holders))
    taken: dict[str, bool] = {}

    def race(holder: str) -> None:
        start.wait(timeout=10)
        with PostgresUnitOfWork(pg_empty) as unit:
            taken[holder] = unit.evaluation_claims.claim(
                "slot|UTC|2026-11-25|11:00", holder, T0, T0 + timedelta(minutes=5)
            )
            unit.commit()

    racers = [threading.Thread(target=race, args=(holder,)) for holder in holders]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)

    assert sorted(taken.values()) == [False] * 3 + [True]


def test_device_cursors_are_deleted_per_user_and_with_the_user_and_not_brought_back(pg_empty):
    for user_id, name in (("u1", "alice"), ("u2", "bob"), ("u3", "carol")):
        add_user(pg_empty, user_id, name)
    cursors = PostgresDeviceCursors(pg_empty)
    keys = [(user_id, "watch") for user_id in ("u1", "u2", "u3")]
    cursors.save({key: DeviceCursor(7) for key in keys})
    cursors.delete_user("u2")
    with PostgresUnitOfWork(pg_empty) as unit:
        unit.users.delete("u1")
        unit.commit()
    assert cursors.load(keys) == {("u3", "watch"): DeviceCursor(7)}
    # A server that still had u1's cursor in memory does not resurrect it.
    cursors.save({("u1", "watch"): DeviceCursor(8)})
    assert cursors.load(keys) == {("u3", "watch"): DeviceCursor(7)}


# --- outages and recovery ------------------------------------------------------------


def test_an_unreachable_server_makes_every_call_unavailable_within_seconds():
    database = PostgresDatabase("postgresql://fittrack:s3cret@127.0.0.1:1/fittrack", pool_max=2)
    cursors = PostgresDeviceCursors(database)
    calls = {
        "unit of work": lambda: PostgresUnitOfWork(database).__enter__(),
        "read-only unit of work": lambda: PostgresUnitOfWork(database, read_only=True).__enter__(),
        "load cursors": lambda: cursors.load([("u1", "watch")]),
        "save cursors": lambda: cursors.save({("u1", "watch"): DeviceCursor(1)}),
        "migrate": database.migrate,
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(Unavailable) as outage:
            call()
        assert time.monotonic() - started < 5, name
        assert str(outage.value) == UNAVAILABLE
    # Every failed attempt gave its slot back: the pool is not exhausted by failures.
    with pytest.raises(Unavailable, match="unavailable"):
        PostgresUnitOfWork(database).__enter__()
    assert "s3cret" not in repr(database)
    database.close()


def test_a_pooled_connection_whose_backend_was_terminated_is_replaced(pg_empty, pg_dsn):
    add_user(pg_empty)
    assert terminate_backends(pg_dsn) >= 1
    with PostgresUnitOfWork(pg_empty) as unit:
        assert unit.users.get("u1") is not None
    with PostgresUnitOfWork(pg_empty, read_only=True) as unit:
        assert unit.users.get("u1") is not None


def test_every_stale_idle_connection_is_replaced_after_a_server_restart(pg_empty, pg_dsn):
    database = PostgresDatabase(pg_dsn, pool_max=3)
    try:
        with PostgresUnitOfWork(database), PostgresUnitOfWork(database), PostgresUnitOfWork(database):
            pass  # three connections now idle in the pool
        assert terminate_backends(pg_dsn) >= 3
        for _ in range(4):
            with PostgresUnitOfWork(database) as unit:
                assert unit.users.get("nobody") is None
    finally:
        database.close()


def test_a_connection_lost_mid_transaction_is_unavailable_and_the_next_unit_of_work_succeeds(pg_empty, pg_dsn):
    add_user(pg_empty)
    with pytest.raises(Unavailable), PostgresUnitOfWork(pg_empty) as unit:
        unit.users.add(*builders.user("u2", "bob"))
        terminate_backends(pg_dsn)
        unit.users.add(*builders.user("u3", "carol"))
        unit.commit()
    with PostgresUnitOfWork(pg_empty) as unit:
        assert unit.users.get("u1") is not None
        assert unit.users.get("u2") is None


def test_the_adapter_recovers_by_itself_once_the_server_is_back(pg_empty, pg_dsn):
    params = psycopg2.extensions.parse_dsn(pg_dsn)
    relay = Forwarder((params.get("host", "127.0.0.1"), int(params.get("port", 5432))))
    relay.restore()
    relayed = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=relay.port)
    database = PostgresDatabase(relayed, pool_max=2)
    cursors = PostgresDeviceCursors(database)
    try:
        add_user(database)
        cursors.save({("u1", "watch"): DeviceCursor(1)})
        relay.cut()
        for call in (lambda: add_user(database, "u2", "bob"), lambda: cursors.load([("u1", "watch")])):
            started = time.monotonic()
            with pytest.raises(Unavailable):
                call()
            assert time.monotonic() - started < 5
        relay.restore()
        add_user(database, "u2", "bob")
        assert cursors.load([("u1", "watch")]) == {("u1", "watch"): DeviceCursor(1)}
        with PostgresUnitOfWork(database, read_only=True) as unit:
            assert [unit.users.get(u) is not None for u in ("u1", "u2")] == [True, True]
    finally:
        database.close()
        relay.cut()


def test_session_lookups_read_the_primary_and_the_replica_only_while_the_primary_is_out(pg_empty, pg_dsn):
    # Session checks must see the latest logout, so they read the primary; while a failover is under way
    # they read the replica instead of failing every call. Here the "primary" is a relay to the one server.
    params = psycopg2.extensions.parse_dsn(pg_dsn)
    relay = Forwarder((params.get("host", "127.0.0.1"), int(params.get("port", 5432))))
    relay.restore()
    primary = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=relay.port)
    unreachable = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=1)
    with_replica = PostgresDatabase(primary, pg_dsn, pool_max=2)
    replica_down = PostgresDatabase(pg_dsn, unreachable, pool_max=2)
    try:
        add_user(with_replica)
        with PostgresUnitOfWork(replica_down, lookup=True) as unit:
            assert unit.users.get("u1") is not None  # the primary answered: the replica was never needed
        relay.cut()
        started = time.monotonic()
        with PostgresUnitOfWork(with_replica, lookup=True) as unit:
            assert unit.users.get("u1") is not None
        assert time.monotonic() - started < 5
        with pytest.raises(Unavailable):
            add_user(with_replica, "u2", "bob")  # writes still need the primary
        with pytest.raises(Unavailable), PostgresUnitOfWork(replica_down, read_only=True) as unit:
            unit.users.get("u1")
    finally:
        with_replica.close()
        replica_down.close()
        relay.cut()


def test_while_the_primary_hangs_only_the_first_lookup_waits_for_it(pg_empty, pg_dsn):
    # A host cut off answers nothing: each connect waits out its timeout (3 s). Once one lookup has
    # waited, the next ones go straight to the replica for a while instead of each waiting again.
    add_user(pg_empty)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes the handshake; nothing ever answers
        primary = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=silent.getsockname()[1])
        database = PostgresDatabase(primary, pg_dsn, pool_max=2)
        try:
            with PostgresUnitOfWork(database, lookup=True) as unit:
                assert unit.users.get("u1") is not None
            started = time.monotonic()
            for _ in range(10):
                with PostgresUnitOfWork(database, lookup=True) as unit:
                    assert unit.users.get("u1") is not None
            assert time.monotonic() - started < 1.0
        finally:
            database.close()


def test_while_a_connect_to_the_primary_hangs_other_lookups_read_the_replica_at_once(pg_empty, pg_dsn):
    add_user(pg_empty)

    def lookup(database) -> bool:
        with PostgresUnitOfWork(database, lookup=True) as unit:
            return unit.users.get("u1") is not None

    with socket.socket() as silent, ThreadPoolExecutor(max_workers=6) as workers:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        primary = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=silent.getsockname()[1])
        database = PostgresDatabase(primary, pg_dsn)
        try:
            first = workers.submit(lookup, database)  # waits out the connect timeout (3 s)
            eventually(lambda: database.primary.out, bool, timeout=5)  # its connect has been slow
            started = time.monotonic()
            others = [workers.submit(lookup, database) for _ in range(5)]
            assert all(other.result(timeout=5) for other in others)
            assert time.monotonic() - started < 1.0
            assert not first.done()  # they did not wait for the first one's connect to fail
            assert first.result(timeout=10)
        finally:
            database.close()


def test_a_lookup_waits_for_a_busy_primary_rather_than_read_the_replica(pg_empty, pg_dsn):
    unreachable = psycopg2.extensions.make_dsn(pg_dsn, host="127.0.0.1", port=1)
    database = PostgresDatabase(pg_dsn, unreachable, pool_max=1, wait_seconds=0.2)
    try:
        with PostgresUnitOfWork(database), pytest.raises(Busy):  # the one connection is lent out
            PostgresUnitOfWork(database, lookup=True).__enter__()
    finally:
        database.close()


def test_a_lookup_cannot_write(pg_empty):
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), PostgresUnitOfWork(pg_empty, lookup=True) as unit:
        unit.users.add(*builders.user("u2", "bob"))


def test_a_caller_finding_every_connection_busy_waits_briefly_then_gets_unavailable(pg_dsn, pg_empty):
    database = PostgresDatabase(pg_dsn, pool_max=1, wait_seconds=0.2)
    try:
        with PostgresUnitOfWork(database):
            started = time.monotonic()
            with pytest.raises(Unavailable, match="busy"):
                PostgresUnitOfWork(database).__enter__()
            assert 0.15 < time.monotonic() - started < 2
        with PostgresUnitOfWork(database) as unit:
            assert unit.users.get("nobody") is None
    finally:
        database.close()


def test_the_first_claim_of_a_batch_stays_and_every_later_claimant_learns_it(pg_empty):
    add_user(pg_empty, "u1", "alice")
    claims = PostgresBatchClaims(pg_empty)
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    first = claims.claim({("u1", "watch", 1): LogPosition(2, 40), ("u1", "watch", 2): LogPosition(2, 41)}, now)
    assert first == {("u1", "watch", 1): LogPosition(2, 40), ("u1", "watch", 2): LogPosition(2, 41)}
    # A later copy of sequence 1, and a crash replay of the first copy of 2: both learn the first positions.
    later = claims.claim({("u1", "watch", 1): LogPosition(2, 97), ("u1", "watch", 2): LogPosition(2, 41)}, now)
    assert later == first


def test_claims_of_a_user_who_is_gone_are_not_recorded_and_go_with_the_account(pg_empty):
    add_user(pg_empty, "u1", "alice")
    claims = PostgresBatchClaims(pg_empty)
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    assert claims.claim({("ghost", "watch", 1): LogPosition(0, 1)}, now) == {}
    claims.claim({("u1", "watch", 1): LogPosition(0, 2)}, now)
    with pg_empty.transaction() as tx:
        tx.execute("DELETE FROM users WHERE user_id = 'u1'")
        assert tx.execute("SELECT count(*) FROM batch_claims").fetchone()[0] == 0


def test_claims_older_than_the_cut_off_are_forgotten(pg_empty):
    add_user(pg_empty, "u1", "alice")
    claims = PostgresBatchClaims(pg_empty)
    old, new = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 10, tzinfo=UTC)
    claims.claim({("u1", "watch", 1): LogPosition(0, 1)}, old)
    claims.claim({("u1", "watch", 2): LogPosition(0, 2)}, new)
    assert claims.forget_before(datetime(2026, 6, 5, tzinfo=UTC)) == 1
    # Forgotten, sequence 1 is claimed afresh by whichever copy comes next.
    assert claims.claim({("u1", "watch", 1): LogPosition(0, 9)}, new) == {("u1", "watch", 1): LogPosition(0, 9)}
