"""MongoMetricStore against the FerretDB that `make services` runs (never skipped: it fails if FerretDB is down).

Each module run works in its own scratch database, dropped at the end; each
test starts from an empty `metrics` collection.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings

from fittrack.core.adapters.minute_blob import decoded
from fittrack.core.adapters.mongo import MongoMetricStore
from fittrack.core.adapters.mongo_documents import escape_source
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.aggregation import DaySummary, SourceFigures
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading, local_date_of
from fittrack.core.services.dispatch import Dispatcher
from fittrack.core.services.persistence import Persister
from tests.unit.fakes import FakeAccountsDatabase, FakeClock, FakeMetricStore, FakeNotificationQueue, FakeSink
from tests.unit.journeys import day_totals, expected, held, journeys, travel

pytestmark = pytest.mark.production

STEPS, HEART = MetricKind.STEPS, MetricKind.HEART_RATE
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
DAY = date(2026, 6, 10)


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


MORNING = minute_of(datetime(2026, 6, 10, 7, 0, tzinfo=UTC))  # 09:00 in Paris


def placed(minute: int, value: float, zone: ZoneInfo = PARIS, metric: MetricKind = STEPS) -> PlacedReading:
    return PlacedReading(metric, minute, value, local_date_of(minute, zone))


def raw_documents(collection) -> list[dict]:
    return list(collection.find().sort("_id", 1))


# --- document shape -----------------------------------------------------------------------


def test_each_user_has_one_document_per_local_day_of_figures_and_one_of_minutes(
    mongo_store, mongo_collection, minutes_collection
):
    late = minute_of(datetime(2026, 6, 10, 22, 30, tzinfo=UTC))  # 00:30 on 11 June in Paris
    touched = mongo_store.upsert_minutes(
        "u1", "watch", [placed(MORNING, 10), placed(MORNING, 70, metric=HEART), placed(late, 5)]
    )
    assert touched == {(STEPS, DAY), (HEART, DAY), (STEPS, DAY + timedelta(days=1))}
    mongo_store.upsert_minutes("u1", "phone", [placed(MORNING + 1, 7)])
    mongo_store.upsert_minutes("u2", "watch", [placed(MORNING, 3)])
    sources = (SourceFigures("phone", 7, 1), SourceFigures("watch", 10, 1))
    mongo_store.save_days("u1", STEPS, [DaySummary(DAY, 17.0, 7.0, 10.0, 2, sources)])

    minutes = raw_documents(minutes_collection)
    assert [(d["_id"], d["user_id"], d["date"]) for d in minutes] == [
        ("u1:2026-06-10", "u1", "2026-06-10"),
        ("u1:2026-06-11", "u1", "2026-06-11"),
        ("u2:2026-06-10", "u2", "2026-06-10"),
    ]
    assert {
        metric: {src: decoded(blob) for src, blob in by_source.items()} for metric, by_source in minutes[0]["b"].items()
    } == {
        "1": {"watch": {MORNING: 10.0}, "phone": {MORNING + 1: 7.0}},
        "5": {"watch": {MORNING: 70.0}},
    }
    documents = raw_documents(mongo_collection)
    assert [(d["_id"], d["user_id"], d["date"], d["um"]) for d in documents] == [
        ("u1:2026-06-10", "u1", "2026-06-10", "u1:2026-06")
    ]
    assert "b" not in documents[0]  # views read the figures without the minutes
    assert documents[0]["d"] == {
        "1": {
            "value": 17.0,
            "min": 7.0,
            "max": 10.0,
            "minutes": 2,
            "sources": {"phone": {"value": 7.0, "minutes": 1}, "watch": {"value": 10.0, "minutes": 1}},
        }
    }
    assert decoded(minutes[1]["b"]["1"]["watch"]) == {late: 5.0}


def test_every_day_document_carries_its_users_month_key_for_range_reads(mongo_store, mongo_collection):
    summaries = [DaySummary(day, 10.0, 10.0, 10.0, 1) for day in (DAY, DAY + timedelta(days=40))]
    mongo_store.save_days("u1", STEPS, summaries)
    assert [(d["_id"], d["um"]) for d in raw_documents(mongo_collection)] == [
        ("u1:2026-06-10", "u1:2026-06"),
        ("u1:2026-07-20", "u1:2026-07"),
    ]


def earlier_release_collection(mongo_client, mongo_database, mongo_collection) -> MongoMetricStore:
    """Day documents as earlier releases wrote them: minutes inside (`m` a field per minute, `b` blobs), no `um`."""
    mongo_client[mongo_database]["fittrack_meta"].drop()

    def day(date_text: str, value: float, **minutes) -> dict:
        figures = {"1": {"value": value, "min": value, "max": value, "minutes": 1}}
        return {"_id": f"u1:{date_text}", "user_id": "u1", "date": date_text, "d": figures, **minutes}

    mongo_collection.insert_many(
        [
            day("2026-05-31", 5.0),
            day("2026-06-01", 6.0),
            day(
                "2026-06-10",
                7.0,
                m={"1": {"watch": {f"t{MORNING}": 10.0, f"t{MORNING + 1}": 11.0}, "phone": {f"t{MORNING}": 4.0}}},
            ),
        ]
    )
    store = MongoMetricStore(mongo_client, mongo_database)
    store.ensure_indexes()
    return store


def test_an_earlier_releases_collection_is_used_as_it_is_until_migrated(
    mongo_client, mongo_database, mongo_collection, minutes_collection
):
    store = earlier_release_collection(mongo_client, mongo_database, mongo_collection)
    assert not store.migrated
    before = store.days("u1", STEPS, date(2026, 5, 31), date(2026, 6, 10))
    assert [d.value for d in before] == [5.0, 6.0, 7.0]
    assert store.daily_totals(["u1"], [STEPS], date(2026, 6, 1), date(2026, 6, 10)) == {
        "u1": {STEPS: {date(2026, 6, 1): 6.0, date(2026, 6, 10): 7.0}}
    }
    # A field per minute is read, and moved into the source's blob when the source is written again.
    assert store.minutes_of_day("u1", STEPS, DAY) == {
        "watch": {MORNING: 10.0, MORNING + 1: 11.0},
        "phone": {MORNING: 4.0},
    }
    store.upsert_minutes("u1", "watch", [placed(MORNING + 1, 12), placed(MORNING + 2, 13)])
    watch = {MORNING: 10.0, MORNING + 1: 12.0, MORNING + 2: 13.0}
    assert store.minutes_of_day("u1", STEPS, DAY) == {"watch": watch, "phone": {MORNING: 4.0}}
    document = mongo_collection.find_one({"_id": "u1:2026-06-10"})
    assert document["m"] == {"1": {"phone": {f"t{MORNING}": 4.0}}}
    assert decoded(document["b"]["1"]["watch"]) == watch
    assert raw_documents(minutes_collection) == []


def test_migrating_gives_day_documents_their_month_key_and_moves_their_minutes_out(
    mongo_client, mongo_database, mongo_collection, minutes_collection
):
    store = earlier_release_collection(mongo_client, mongo_database, mongo_collection)
    before = store.days("u1", STEPS, date(2026, 5, 31), date(2026, 6, 10))
    minutes = store.minutes_of_day("u1", STEPS, DAY)

    assert store.migrate_layout() == 3
    assert store.migrated
    assert [(d["_id"], d["um"], "m" in d or "b" in d) for d in raw_documents(mongo_collection)] == [
        ("u1:2026-05-31", "u1:2026-05", False),
        ("u1:2026-06-01", "u1:2026-06", False),
        ("u1:2026-06-10", "u1:2026-06", False),
    ]
    assert [d["_id"] for d in raw_documents(minutes_collection)] == ["u1:2026-06-10"]
    assert store.days("u1", STEPS, date(2026, 5, 31), date(2026, 6, 10)) == before
    assert store.minutes_of_day("u1", STEPS, DAY) == minutes
    again = MongoMetricStore(mongo_client, mongo_database)
    again.ensure_indexes()
    assert again.migrated  # the layout is noted


def test_applying_the_same_readings_twice_leaves_identical_documents(mongo_store, mongo_collection, minutes_collection):
    readings = [placed(MORNING + i, 10 + i) for i in range(30)] + [placed(MORNING, 80, metric=HEART)]
    summary = DaySummary(DAY, 735.0, 10.0, 39.0, 30)
    first = mongo_store.upsert_minutes("u1", "watch", readings)
    mongo_store.save_days("u1", STEPS, [summary])
    once = raw_documents(mongo_collection), raw_documents(minutes_collection)
    second = mongo_store.upsert_minutes("u1", "watch", readings)
    mongo_store.save_days("u1", STEPS, [summary])
    assert second == first
    assert (raw_documents(mongo_collection), raw_documents(minutes_collection)) == once


def test_a_persister_that_lost_its_partition_unknowingly_cannot_overwrite_the_new_owner_s_minutes(
    mongo_client, mongo_database, mongo_store
):
    """Seen in the cluster's fault tests: a persister cut off during a rebalance came back and wrote its stale
    copy of a day over the new owner's write, and an acknowledged batch was gone."""
    mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 10)])
    stale = MongoMetricStore(mongo_client, mongo_database)
    stale.ensure_indexes()
    with pytest.raises(Unavailable, match="written meanwhile"), stale.grouped():
        stale.upsert_minutes("u1", "watch", [placed(MORNING + 2, 30)])  # reads the day as it is now
        mongo_store.upsert_minutes("u1", "watch", [placed(MORNING + 1, 20)])  # the new owner writes it
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 10.0, MORNING + 1: 20.0}}
    # Applied again from a fresh read, as the persister does after the failure, nothing is lost.
    stale.upsert_minutes("u1", "watch", [placed(MORNING + 2, 30)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {
        "watch": {MORNING: 10.0, MORNING + 1: 20.0, MORNING + 2: 30.0}
    }


def test_a_resent_minute_replaces_its_value_instead_of_adding_to_it(mongo_store):
    mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 10)])
    mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 12)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 12.0}}


def test_a_repeated_minute_within_one_batch_keeps_its_last_value(mongo_store):
    mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 10), placed(MORNING, 11)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 11.0}}


def test_two_sources_reporting_the_same_minute_are_kept_apart(mongo_store, minutes_collection):
    mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 10)])
    mongo_store.upsert_minutes("u1", "phone", [placed(MORNING, 20)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 10.0}, "phone": {MORNING: 20.0}}
    stored = raw_documents(minutes_collection)[0]["b"]["1"]
    assert {source: decoded(blob) for source, blob in stored.items()} == {
        "watch": {MORNING: 10.0},
        "phone": {MORNING: 20.0},
    }


@pytest.mark.parametrize(
    "source",
    ["garmin.fenix.7", "$watch", "a$b", "100%", "%2E", "my watch ", " padded", "montre-é", "manual", ""],
)
def test_source_names_that_would_break_a_field_path_round_trip(mongo_store, minutes_collection, source):
    mongo_store.upsert_minutes("u1", source, [placed(MORNING, 10)])
    mongo_store.upsert_minutes("u1", "plain", [placed(MORNING, 20)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {source: {MORNING: 10.0}, "plain": {MORNING: 20.0}}
    stored = set(raw_documents(minutes_collection)[0]["b"]["1"])
    assert stored == {escape_source(source), "plain"}
    assert not any(ch in key for key in stored for ch in ".$ ")


def test_escaped_names_never_collide_with_a_source_named_like_an_escape(mongo_store):
    mongo_store.upsert_minutes("u1", "a.b", [placed(MORNING, 1)])
    mongo_store.upsert_minutes("u1", "a%2Eb", [placed(MORNING, 2)])
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"a.b": {MORNING: 1.0}, "a%2Eb": {MORNING: 2.0}}


# --- time-zone changes --------------------------------------------------------------------


def test_a_minute_resent_after_flying_east_stays_on_the_day_it_was_first_placed_on(mongo_store, mongo_collection):
    evening = minute_of(datetime(2026, 6, 10, 21, 30, tzinfo=UTC))  # 23:30 in Paris, 06:30 next day in Tokyo
    assert mongo_store.upsert_minutes("u1", "watch", [placed(evening, 10)]) == {(STEPS, DAY)}
    resent = [placed(evening, 12, TOKYO), placed(evening + 1, 3, TOKYO)]
    assert mongo_store.upsert_minutes("u1", "watch", resent) == {(STEPS, DAY), (STEPS, DAY + timedelta(days=1))}
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {evening: 12.0}}
    assert mongo_store.minutes_of_day("u1", STEPS, DAY + timedelta(days=1)) == {"watch": {evening + 1: 3.0}}


def test_a_minute_resent_after_flying_west_stays_on_the_day_it_was_first_placed_on(mongo_store):
    early = minute_of(datetime(2026, 6, 10, 20, 0, tzinfo=UTC))  # 05:00 on 11 June in Tokyo, 22:00 on 10 June in Paris
    assert mongo_store.upsert_minutes("u1", "watch", [placed(early, 10, TOKYO)]) == {(STEPS, DAY + timedelta(days=1))}
    assert mongo_store.upsert_minutes("u1", "watch", [placed(early, 12, PARIS)]) == {(STEPS, DAY + timedelta(days=1))}
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {}
    assert mongo_store.minutes_of_day("u1", STEPS, DAY + timedelta(days=1)) == {"watch": {early: 12.0}}


def test_a_minute_stays_put_even_across_the_widest_time_zone_jump(mongo_store):
    noon = minute_of(datetime(2026, 6, 10, 11, 0, tzinfo=UTC))  # 01:00 on 11 June at UTC+14, 23:00 on 9 June at UTC-12
    kiritimati, baker = ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")
    assert mongo_store.upsert_minutes("u1", "watch", [placed(noon, 10, kiritimati)]) == {(STEPS, date(2026, 6, 11))}
    assert mongo_store.upsert_minutes("u1", "watch", [placed(noon, 12, baker)]) == {(STEPS, date(2026, 6, 11))}
    assert mongo_store.minutes_of_day("u1", STEPS, date(2026, 6, 9)) == {}


def test_another_sources_copy_of_a_minute_joins_its_day_but_another_metric_does_not(mongo_store):
    evening = minute_of(datetime(2026, 6, 10, 21, 30, tzinfo=UTC))
    mongo_store.upsert_minutes("u1", "watch", [placed(evening, 10)])
    # Same metric and minute from the phone after a move to Tokyo: merged with the watch's on its day,
    # not counted again on the next one.
    assert mongo_store.upsert_minutes("u1", "phone", [placed(evening, 4, TOKYO)]) == {(STEPS, DAY)}
    assert mongo_store.minutes_of_day("u1", STEPS, DAY + timedelta(days=1)) == {}
    assert mongo_store.upsert_minutes("u1", "watch", [placed(evening, 90, TOKYO, HEART)]) == {
        (HEART, DAY + timedelta(days=1))
    }


# --- random journeys: the same days as the fake and SQLite -------------------------------


travellers = (f"traveller-{n}" for n in itertools.count())


# The collections are emptied once for the test, not for each example: each journey is another user's.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=journeys())
def test_every_minute_counts_once_on_the_day_it_first_came_with_as_in_the_fake_and_sqlite(
    mongo_store, journeys_sqlite_store, writes
):
    touched, minutes = expected(writes)
    fake, user_id = FakeMetricStore(), next(travellers)

    assert travel(mongo_store, user_id, writes) == travel(fake, user_id, writes) == touched
    assert travel(journeys_sqlite_store, user_id, writes) == touched
    assert held(mongo_store, user_id) == held(fake, user_id) == held(journeys_sqlite_store, user_id) == minutes
    assert day_totals(held(mongo_store, user_id)) == day_totals(held(journeys_sqlite_store, user_id))


@pytest.fixture(scope="module")
def journeys_sqlite_store(tmp_path_factory):
    db = SqliteDatabase(tmp_path_factory.mktemp("journeys") / "metrics.sqlite3")
    db.migrate()
    yield SqliteMetricStore(db)
    db.close()


# --- daily summaries ----------------------------------------------------------------------


def test_days_across_month_boundaries_come_in_date_order_with_missing_days_absent(mongo_store):
    stored = [date(2026, 3, 1), date(2026, 1, 31), date(2026, 2, 3), date(2026, 1, 30), date(2026, 2, 1)]
    mongo_store.save_days("u1", STEPS, [DaySummary(day, float(day.day), 1.0, 2.0, 3) for day in stored])
    mongo_store.save_days("u1", HEART, [DaySummary(date(2026, 2, 2), 70.0, 60.0, 80.0, 5)])
    mongo_store.save_days("u2", STEPS, [DaySummary(date(2026, 2, 2), 5.0, 1.0, 2.0, 3)])
    mongo_store.upsert_minutes("u1", "watch", [PlacedReading(STEPS, MORNING, 1.0, date(2026, 2, 4))])

    found = mongo_store.days("u1", STEPS, date(2026, 1, 31), date(2026, 3, 1))
    assert found == [
        DaySummary(date(2026, 1, 31), 31.0, 1.0, 2.0, 3),
        DaySummary(date(2026, 2, 1), 1.0, 1.0, 2.0, 3),
        DaySummary(date(2026, 2, 3), 3.0, 1.0, 2.0, 3),
        DaySummary(date(2026, 3, 1), 1.0, 1.0, 2.0, 3),
    ]
    assert [d.day for d in mongo_store.days("u1", STEPS, date(2025, 12, 1), date(2026, 12, 31))] == sorted(stored)
    assert mongo_store.days("u1", HEART, date(2026, 2, 2), date(2026, 2, 2)) == [
        DaySummary(date(2026, 2, 2), 70.0, 60.0, 80.0, 5)
    ]
    assert mongo_store.days("u1", STEPS, date(2026, 2, 2), date(2026, 2, 2)) == []  # only heart rate that day
    assert mongo_store.days("u1", STEPS, date(2026, 2, 4), date(2026, 2, 4)) == []  # minutes, no summary yet


def test_deleting_a_user_removes_all_their_documents_and_no_one_elses(
    mongo_store, mongo_collection, minutes_collection
):
    for user_id in ("u1", "u2"):
        mongo_store.upsert_minutes(user_id, "watch", [placed(MORNING, 10), placed(MORNING + 24 * 60, 10)])
        mongo_store.save_days(user_id, STEPS, [DaySummary(DAY, 10.0, 10.0, 10.0, 1)])
    mongo_store.delete_user("u1")
    assert {d["user_id"] for d in raw_documents(mongo_collection)} == {"u2"}
    assert {d["user_id"] for d in raw_documents(minutes_collection)} == {"u2"}
    assert mongo_store.days("u1", STEPS, DAY, DAY + timedelta(days=1)) == []
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {}
    assert len(mongo_store.days("u2", STEPS, DAY, DAY)) == 1


# --- the persister over the store ---------------------------------------------------------


def persister_over(store, accounts: FakeAccountsDatabase) -> tuple[Persister, FakeSink]:
    """A persister whose goal-met notifications a dispatcher stores and sends live to `sink` at once."""
    sink, queue = FakeSink(), FakeNotificationQueue()
    queue.dispatcher = Dispatcher(accounts, sink, FakeClock(NOW))
    return Persister(store, accounts, queue, FakeClock(NOW)), sink


def accounts_with_alice() -> FakeAccountsDatabase:
    accounts = FakeAccountsDatabase()
    with accounts() as unit:
        unit.users.add(
            User("alice", "alice", Profile(time_zone="Europe/Paris"), NOW), Credentials("alice", b"x", NOW, None)
        )
        unit.goals.add(Goal("g1", "alice", STEPS, GoalPeriod.DAILY, 1000.0, True, NOW, NOW))
        unit.commit()
    return accounts


def a_day_and_a_half_of_batches() -> list[AcceptedBatch]:
    yesterday_evening = minute_of(datetime(2026, 6, 9, 20, 0, tzinfo=UTC))
    batches = []
    for number, start in enumerate(range(yesterday_evening, MORNING + 60, 97), start=1):
        for source, steps, bpm in (("watch", 12.0, 70.0), ("phone", 15.0, 80.0)):
            readings = [placed(start + i, steps + i % 5) for i in range(40)]
            readings += [placed(start + i, bpm + i % 3, metric=HEART) for i in range(0, 40, 4)]
            batches.append(AcceptedBatch("alice", source, number, tuple(readings)))
    return batches


def test_the_persister_over_the_mongo_store_gives_the_same_totals_when_batches_are_applied_twice(mongo_store):
    accounts = accounts_with_alice()
    persister, sink = persister_over(mongo_store, accounts)
    batches = a_day_and_a_half_of_batches()

    def totals():
        return [mongo_store.days("alice", metric, DAY - timedelta(days=1), DAY) for metric in (STEPS, HEART)]

    persister.apply(batches)
    once = totals()
    persister.apply(batches)
    persister.apply(batches[: len(batches) // 2])
    assert totals() == once
    assert [d.day for d in once[0]] == [DAY - timedelta(days=1), DAY]
    assert len(sink.delivered) == 1  # the daily goal is met once, however often the batches come

    reference = FakeMetricStore()
    persister_over(reference, accounts_with_alice())[0].apply(batches)
    expected = [reference.days("alice", metric, DAY - timedelta(days=1), DAY) for metric in (STEPS, HEART)]
    assert once == expected


def test_the_persister_drops_batches_of_a_user_who_no_longer_exists(mongo_store, mongo_collection, minutes_collection):
    persister, _ = persister_over(mongo_store, FakeAccountsDatabase())
    persister.apply(a_day_and_a_half_of_batches()[:2])
    assert raw_documents(mongo_collection) == raw_documents(minutes_collection) == []


# --- outages and configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.upsert_minutes("u1", "watch", [placed(MORNING, 1)]),
        lambda store: store.days("u1", STEPS, DAY, DAY),
    ],
    ids=["write", "read"],
)
def test_a_store_without_a_server_is_unavailable_within_five_seconds(call):
    store = MongoMetricStore("mongodb://127.0.0.1:1/")
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match="the metric store is unavailable; try again"):
            call(store)
    finally:
        store.close()
    assert time.monotonic() - started < 5


def test_an_unknown_read_preference_is_refused_up_front():
    with pytest.raises(ValueError, match="read_preference must be one of"):
        MongoMetricStore("mongodb://127.0.0.1:1/", read_preference="fastest")


def test_writes_grouped_by_the_persister_reach_the_server_at_the_end_and_not_at_all_after_an_error(
    mongo_store, mongo_collection, minutes_collection
):
    with mongo_store.grouped():
        mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 10)])
        assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 10.0}}
        mongo_store.save_days("u1", STEPS, [DaySummary(DAY, 10.0, 10.0, 10.0, 1)])
        assert raw_documents(mongo_collection) == raw_documents(minutes_collection) == []
    assert [d.value for d in mongo_store.days("u1", STEPS, DAY, DAY)] == [10.0]

    with pytest.raises(RuntimeError), mongo_store.grouped():
        mongo_store.upsert_minutes("u1", "watch", [placed(MORNING, 99)])
        raise RuntimeError("the persister failed half-way")
    assert mongo_store.minutes_of_day("u1", STEPS, DAY) == {"watch": {MORNING: 10.0}}
