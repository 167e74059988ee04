"""The SQLite metric store's own promises: its minute blobs, the move to them, and grouped writes.

The behaviour it shares with the other stores is checked in test_fakes.py.
"""

import random
import sqlite3
import struct
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.adapters.sqlite import MIGRATIONS, SqliteDatabase
from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore, keep_each_minute_on_one_day
from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading, local_date_of
from fittrack.core.services.dispatch import Dispatcher
from fittrack.core.services.persistence import Persister
from tests.unit.fakes import FakeAccountsDatabase, FakeClock, FakeMetricStore, FakeNotificationQueue, FakeSink

STEPS, HEART = MetricKind.STEPS, MetricKind.HEART_RATE
NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
DAY = date(2026, 6, 10)
MORNING = int(datetime(2026, 6, 10, 7, 0, tzinfo=UTC).timestamp()) // 60
BEFORE_DAY_BLOBS = 4  # the schema version whose minutes were one row each, in minute_values
DAY_BLOBS = BEFORE_DAY_BLOBS + 1
# Moves minutes left on two days to one.
ONE_DAY_PER_MINUTE = next(m.version for m in MIGRATIONS if m.name.endswith("_keep_each_minute_on_one_day.py"))
ZONES = [ZoneInfo(name) for name in ("Etc/GMT+12", "America/New_York", "UTC", "Europe/Paris", "Pacific/Kiritimati")]


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "metrics.sqlite3")
    yield database
    database.close()


@pytest.fixture
def store(db):
    db.migrate()
    return SqliteMetricStore(db)


def placed(minute: int, value: float, zone: ZoneInfo = ZONES[3], metric: MetricKind = STEPS) -> PlacedReading:
    return PlacedReading(metric, minute, value, local_date_of(minute, zone))


def every_day(store, user_id: str, days: list[date]) -> dict:
    """Everything the store holds for these days, by (metric, day), leaving out empty days."""
    found = {(metric, day): store.minutes_of_day(user_id, metric, day) for metric in MetricKind for day in days}
    return {key: minutes for key, minutes in found.items() if minutes}


# --- the blob -----------------------------------------------------------------------------------


def test_a_sources_minutes_of_a_day_are_one_row_of_little_endian_int32_minutes_then_float64_values(db, store):
    store.upsert_minutes("u1", "watch", [placed(MORNING + 1, 7.5), placed(MORNING, 3)])
    store.upsert_minutes("u1", "watch", [placed(MORNING + 5, 1)])
    rows = db.connection().execute("SELECT user_id, metric, local_date, source, minutes FROM day_minutes").fetchall()
    expected = struct.pack("<3i3d", MORNING, MORNING + 1, MORNING + 5, 3.0, 7.5, 1.0)
    assert rows == [("u1", int(STEPS), DAY.toordinal(), "watch", expected)]


# --- the move from minute_values ----------------------------------------------------------------


def legacy_rows() -> list[tuple[str, int, str, int, int, float]]:
    """(user, metric, source, minute, local day, value) as schema 4 held them."""
    rows = []
    for user_id in ("alice", "bob"):
        for source in ("watch", "phone", "montre é.$"):
            for offset in (0, 1, 2, 30, 1439, 1440, 1441):
                minute = MORNING - 1440 + offset
                rows.append((user_id, int(STEPS), source, minute, local_date_of(minute, ZONES[3]).toordinal(), 0.5))
    rows += [("alice", int(HEART), "watch", MORNING + n, DAY.toordinal(), 60.25 + n) for n in range(0, 600, 7)]
    # Before minutes were pinned to their first day, another device could place a minute on a second day.
    rows.append(("alice", int(STEPS), "tablet", MORNING + 1, DAY.toordinal() - 1, 9.0))
    rows += [("alice", int(STEPS), "tablet", MORNING + 3, DAY.toordinal() + 1, 1.0)]
    rows += [("alice", int(STEPS), "phone", MORNING + 3, DAY.toordinal() - 1, 1.0)]
    random.Random(4).shuffle(rows)
    return rows


def database_at_schema_4(db: SqliteDatabase) -> sqlite3.Connection:
    assert db.migrate(BEFORE_DAY_BLOBS) == BEFORE_DAY_BLOBS
    conn = db.connection()
    conn.executemany(
        "INSERT INTO minute_values (user_id, metric, source, minute, local_date, value) VALUES (?, ?, ?, ?, ?, ?)",
        legacy_rows(),
    )
    conn.execute(
        "INSERT INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
        " VALUES ('alice', 1, ?, 1.5, 0.5, 0.5, 3, '[[\"watch\",1.5,3]]')",
        (DAY.toordinal(),),
    )
    return conn


def minutes_as_schema_4_held_them(conn: sqlite3.Connection) -> dict:
    held: dict = {}
    for user_id, metric, day, source, minute, value in conn.execute(
        "SELECT user_id, metric, local_date, source, minute, value FROM minute_values"
    ):
        key = (user_id, MetricKind(metric), date.fromordinal(day))
        held.setdefault(key, {}).setdefault(source, {})[minute] = value
    return held


def test_migrating_moves_every_minute_into_day_blobs_and_drops_minute_values(db):
    conn = database_at_schema_4(db)
    before = minutes_as_schema_4_held_them(conn)

    assert db.migrate(DAY_BLOBS) == DAY_BLOBS

    store = SqliteMetricStore(db)
    assert {key: store.minutes_of_day(*key) for key in before} == before
    assert sum(len(minutes) for by_source in before.values() for minutes in by_source.values()) == len(legacy_rows())
    names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "day_minutes" in names
    assert not {"minute_values", "minute_values_by_day", "minute_values_by_minute"} & names
    assert [d.value for d in store.days("alice", STEPS, DAY, DAY)] == [1.5]
    # The moved minutes still pin their day: resent from UTC-12, a minute of bob's day before stays there.
    assert store.upsert_minutes("bob", "phone", [placed(MORNING - 1440, 4.0, ZONES[0])]) == {
        (STEPS, DAY - timedelta(days=1))
    }


def test_migrating_again_changes_nothing(db):
    conn = database_at_schema_4(db)
    before = minutes_as_schema_4_held_them(conn)
    db.migrate(DAY_BLOBS)
    blobs = conn.execute("SELECT * FROM day_minutes ORDER BY 1, 2, 3, 4").fetchall()

    assert db.migrate(DAY_BLOBS) == DAY_BLOBS
    with db.transaction():
        MIGRATIONS[BEFORE_DAY_BLOBS].step(conn)

    assert conn.execute("SELECT * FROM day_minutes ORDER BY 1, 2, 3, 4").fetchall() == blobs
    store = SqliteMetricStore(db)
    assert {key: store.minutes_of_day(*key) for key in before} == before


def test_a_day_already_in_day_minutes_keeps_its_own_values_over_those_moved_into_it(db):
    conn = database_at_schema_4(db)
    with db.transaction():
        conn.execute(
            "CREATE TABLE day_minutes (user_id TEXT NOT NULL, metric INTEGER NOT NULL, local_date INTEGER NOT NULL,"
            " source TEXT NOT NULL, minutes BLOB NOT NULL, PRIMARY KEY (user_id, metric, local_date, source))"
            " WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO day_minutes VALUES ('alice', ?, ?, 'watch', ?)",
            (int(HEART), DAY.toordinal(), struct.pack("<2i2d", MORNING, MORNING + 1, 99.0, 98.0)),
        )
    db.migrate()
    minutes = SqliteMetricStore(db).minutes_of_day("alice", HEART, DAY)["watch"]
    assert (minutes[MORNING], minutes[MORNING + 1], minutes[MORNING + 7]) == (99.0, 98.0, 67.25)


def test_a_database_created_today_reaches_the_same_schema(db):
    assert db.migrate() == len(MIGRATIONS)
    names = {name for (name,) in db.connection().execute("SELECT name FROM sqlite_master")}
    assert "day_minutes" in names and "minute_values" not in names


# --- the move of minutes left on two days -------------------------------------------------------


def daily_rows(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("SELECT * FROM daily_values ORDER BY 1, 2, 3").fetchall()


def test_every_copy_of_a_minute_left_on_two_days_joins_the_earlier_day_which_is_counted_again(db):
    conn = database_at_schema_4(db)
    conn.execute(
        "INSERT INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
        " VALUES ('alice', 1, ?, 1.0, 1.0, 1.0, 1, '[[\"tablet\",1.0,1]]')",
        (DAY.toordinal() + 1,),
    )
    db.migrate(ONE_DAY_PER_MINUTE - 1)
    store = SqliteMetricStore(db)
    day_before, day_after = DAY - timedelta(days=1), DAY + timedelta(days=1)

    db.migrate(ONE_DAY_PER_MINUTE)

    # MORNING + 1: the tablet's copy was on the day before, the other three sources' on DAY.
    # MORNING + 3: the phone's on the day before, the tablet's (placed by hand) on the day after.
    held = every_day(store, "alice", [day_before, DAY, day_after])
    assert {source: sorted(minutes) for source, minutes in held[(STEPS, day_before)].items()} == {
        "watch": [MORNING - 1440, MORNING - 1439, MORNING - 1438, MORNING - 1410, MORNING + 1],
        "phone": [MORNING - 1440, MORNING - 1439, MORNING - 1438, MORNING - 1410, MORNING + 1, MORNING + 3],
        "montre é.$": [MORNING - 1440, MORNING - 1439, MORNING - 1438, MORNING - 1410, MORNING + 1],
        "tablet": [MORNING + 1, MORNING + 3],
    }
    assert held[(STEPS, day_before)]["tablet"] == {MORNING + 1: 9.0, MORNING + 3: 1.0}
    assert held[(STEPS, DAY)] == {
        source: {MORNING - 1: 0.5, MORNING: 0.5} for source in ("watch", "phone", "montre é.$")
    }
    assert (STEPS, day_after) not in held
    # Each minute counts once: on the day before, 4 minutes of 0.5 and the highest copy of each moved one.
    assert [(d.day, d.value, d.minutes) for d in store.days("alice", STEPS, day_before, day_after)] == [
        (day_before, 2.0 + 9.0 + 1.0, 6),
        (DAY, 1.0, 2),
    ]


def test_a_minute_moved_to_the_earlier_day_stays_there_whichever_source_sends_it_again(db):
    database_at_schema_4(db)
    db.migrate()
    store = SqliteMetricStore(db)
    day_before = DAY - timedelta(days=1)
    for source in ("watch", "tablet", "ring"):
        assert store.upsert_minutes("alice", source, [PlacedReading(STEPS, MORNING + 1, 5, DAY)]) == {
            (STEPS, day_before)
        }
    assert not any(MORNING + 1 in minutes for minutes in store.minutes_of_day("alice", STEPS, DAY).values())


def test_the_figures_of_days_that_kept_their_minutes_are_left_as_they_were(db):
    conn = database_at_schema_4(db)
    conn.execute(
        "INSERT INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
        " VALUES ('bob', 1, ?, 42.0, 0.5, 0.5, 84, '[]')",
        (DAY.toordinal(),),
    )
    db.migrate(ONE_DAY_PER_MINUTE - 1)
    bob = [row for row in daily_rows(conn) if row[0] == "bob"]
    blobs = conn.execute("SELECT * FROM day_minutes WHERE user_id = 'bob' ORDER BY 1, 2, 3, 4").fetchall()

    db.migrate(ONE_DAY_PER_MINUTE)

    assert [row for row in daily_rows(conn) if row[0] == "bob"] == bob
    assert conn.execute("SELECT * FROM day_minutes WHERE user_id = 'bob' ORDER BY 1, 2, 3, 4").fetchall() == blobs


def test_moving_minutes_to_one_day_again_changes_nothing(db):
    conn = database_at_schema_4(db)
    db.migrate()
    blobs, figures = conn.execute("SELECT * FROM day_minutes ORDER BY 1, 2, 3, 4").fetchall(), daily_rows(conn)

    with db.transaction():
        keep_each_minute_on_one_day(conn)

    assert conn.execute("SELECT * FROM day_minutes ORDER BY 1, 2, 3, 4").fetchall() == blobs
    assert daily_rows(conn) == figures


# --- grouped writes -----------------------------------------------------------------------------


def test_a_failure_inside_a_group_undoes_every_write_of_the_group(store):
    store.upsert_minutes("u1", "watch", [placed(MORNING, 1)])
    with pytest.raises(RuntimeError), store.grouped():
        store.upsert_minutes("u1", "watch", [placed(MORNING, 2), placed(MORNING + 1, 2)])
        store.save_days("u1", STEPS, [DaySummary(DAY, 4.0, 2.0, 2.0, 2)])
        raise RuntimeError("crash before the commit")
    assert store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 1.0}}
    assert store.days("u1", STEPS, DAY, DAY) == []


def test_a_group_inside_a_group_is_part_of_it(store):
    with pytest.raises(RuntimeError), store.grouped():
        with store.grouped():
            store.upsert_minutes("u1", "watch", [placed(MORNING, 2)])
        raise RuntimeError("crash before the outer commit")
    assert store.minutes_of_day("u1", STEPS, DAY) == {}


# --- the same answers as the fake ---------------------------------------------------------------


def random_writes(seed: int) -> list[tuple[str, list[PlacedReading]]]:
    """A user with two devices over three days, moving between time zones, resending and backfilling."""
    rng = random.Random(seed)
    # Twenty hours either side of midnight UTC, which is another day in one zone or another.
    start = int(datetime(2026, 6, 9, 4, 0, tzinfo=UTC).timestamp()) // 60
    writes = []
    for _ in range(30):
        zone = rng.choice(ZONES)
        first = start + rng.randrange(40 * 60)
        minutes = range(first, first + rng.randrange(1, 90), rng.choice((1, 1, 3)))
        metric = rng.choice((STEPS, STEPS, HEART))
        readings = [placed(minute, rng.randrange(1, 100), zone, metric) for minute in minutes]
        if rng.random() < 0.3:  # a resend of some of them, from wherever the user is now
            later = rng.choice(ZONES)
            readings += [placed(r.minute, r.value + 1, later, metric) for r in rng.sample(readings, len(readings) // 2)]
        writes.append((rng.choice(("watch", "phone")), readings))
    return writes


@pytest.mark.parametrize("seed", range(8))
def test_random_writes_leave_the_same_minutes_on_the_same_days_as_the_fake(store, seed):
    reference = FakeMetricStore()
    for source, readings in random_writes(seed):
        assert store.upsert_minutes("u1", source, readings) == reference.upsert_minutes("u1", source, readings)
    days = [date(2026, 6, 6) + timedelta(days=n) for n in range(8)]
    assert every_day(store, "u1", days) == every_day(reference, "u1", days)


def alice_with_a_goal(uow) -> None:
    with uow() as unit:
        unit.users.add(User("alice", "alice", Profile(time_zone="Europe/Paris"), NOW), Credentials("alice", b"x", NOW))
        unit.goals.add(Goal("g1", "alice", STEPS, GoalPeriod.DAILY, 1000.0, True, NOW, NOW))
        unit.commit()


def test_the_persister_over_sqlite_gives_the_fakes_totals_and_notifies_once(db, store):
    chunks = [[], []]
    for number, (source, readings) in enumerate(random_writes(99), start=1):
        chunks[number % 2].append(AcceptedBatch("alice", source, number, tuple(readings)))
    chunks.append([AcceptedBatch("alice", "watch", 999, tuple(placed(MORNING + n, 100) for n in range(20)))])
    uow = lambda: SqliteUnitOfWork(db)  # noqa: E731
    alice_with_a_goal(uow)
    sink, queue, reference_queue = FakeSink(), FakeNotificationQueue(), FakeNotificationQueue()
    queue.dispatcher = Dispatcher(uow, sink, FakeClock(NOW))
    persister = Persister(store, uow, queue, FakeClock(NOW))
    reference, accounts = FakeMetricStore(), FakeAccountsDatabase()
    alice_with_a_goal(accounts)
    reference_queue.dispatcher = Dispatcher(accounts, FakeSink(), FakeClock(NOW))
    reference_persister = Persister(reference, accounts, reference_queue, FakeClock(NOW))

    for chunk in chunks + chunks:
        persister.apply(chunk)
        reference_persister.apply(chunk)

    first, last = date(2026, 6, 6), date(2026, 6, 13)
    for metric in (STEPS, HEART):
        assert store.days("alice", metric, first, last) == reference.days("alice", metric, first, last)
    assert len(store.days("alice", STEPS, first, last)) >= 3
    (notification,) = sink.delivered
    with uow() as unit:
        assert unit.notifications.page("alice", False, 10, None).notifications == [notification]
