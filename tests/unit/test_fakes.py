"""The fakes keep the promises of the real adapters: each check runs against both.

If a fake drifts from the SQLite adapters (fittrack/core/adapters/sqlite_*.py), the service tests that use it
would prove nothing; these tests catch that.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
from fittrack.core.adapters.sqlite_ingest import SqliteReadingBus
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.delivery import Delivery, DeliveryState
from fittrack.core.domain.errors import AlreadyExists, NotFound
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading, local_date_of
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import PublishOutcome, RefreshRecord
from tests.unit.fakes import FakeAccountsDatabase, FakeClock, FakeHasher, FakeMetricStore, FakeReadingBus

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
DAY = date(2026, 6, 10)


@pytest.fixture(params=["fake", "sqlite"])
def backend(request, tmp_path):
    if request.param == "fake":
        yield FakeAccountsDatabase(), FakeMetricStore(), FakeReadingBus()
        return
    db = SqliteDatabase(tmp_path / "contract.sqlite3")
    db.migrate()
    yield (lambda: SqliteUnitOfWork(db)), SqliteMetricStore(db), SqliteReadingBus(db)
    db.close()


@pytest.fixture
def uow(backend):
    return backend[0]


@pytest.fixture
def store(backend):
    return backend[1]


@pytest.fixture
def bus(backend):
    return backend[2]


def user(user_id: str = "u1", username: str = "alice", zone: str = "Europe/Paris") -> tuple[User, Credentials]:
    return User(user_id, username, Profile(time_zone=zone), T0), Credentials(user_id, b"hash", T0, None)


def add_user(uow, user_id: str = "u1", username: str = "alice", zone: str = "Europe/Paris") -> None:
    with uow() as unit:
        unit.users.add(*user(user_id, username, zone))
        unit.commit()


def goal(goal_id: str = "g1", user_id: str = "u1", period: GoalPeriod = GoalPeriod.DAILY, active=True) -> Goal:
    return Goal(goal_id, user_id, MetricKind.STEPS, period, 1000.0, active, T0, T0)


def notification(notification_id: str, user_id: str = "u1", key: str | None = None) -> Notification:
    return Notification(
        notification_id, user_id, NotificationKind.GOAL_MET, "t", "b", T0, key or f"key-{notification_id}"
    )


def add_goals(uow, *goals: Goal) -> None:
    with uow() as unit:
        for each in goals:
            unit.goals.add(each)
        unit.commit()


# --- unit of work -------------------------------------------------------------------


def test_changes_not_committed_are_discarded(uow):
    with uow() as unit:
        unit.users.add(*user())
    with uow() as unit:
        assert unit.users.get("u1") is None


def test_committed_changes_are_kept(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.users.get_by_username("alice").user_id == "u1"


def test_an_error_inside_the_unit_of_work_discards_its_changes(uow):
    add_user(uow)
    with pytest.raises(AlreadyExists), uow() as unit:
        unit.goals.add(goal("g1"))
        unit.users.add(*user("u2", "ALICE"))
        unit.commit()
    with uow() as unit:
        assert unit.goals.list_for_user("u1") == []
        assert unit.users.get("u2") is None


def test_the_fake_unit_of_work_says_whether_it_committed():
    database = FakeAccountsDatabase()
    with database() as unit:
        unit.users.add(*user())
    assert not unit.committed
    with database() as unit:
        unit.users.add(*user())
        unit.commit()
    assert unit.committed
    assert database.commits == 1


# --- users and sessions -------------------------------------------------------------


def test_usernames_are_unique_and_found_regardless_of_case(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.users.get_by_username("ALICE").user_id == "u1"
        with pytest.raises(AlreadyExists):
            unit.users.add(*user("u2", "Alice"))


def test_deleting_a_user_removes_their_goals_notifications_and_sessions(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", "u2"))
        unit.notifications.add(notification("n1"))
        unit.sessions.create("s1", "u1", T0)
        unit.sessions.add_refresh(RefreshRecord("h1", "s1", "u1", T0 + timedelta(days=1), False))
        unit.commit()
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.users.get("u1") is None
        assert unit.users.get_credentials("u1") is None
        assert unit.goals.get("g1") is None
        assert unit.goals.get("g2") is not None
        assert unit.notifications.page("u1", False, 10, None).notifications == []
        assert not unit.sessions.is_active("s1")
        assert unit.sessions.get_refresh("h1") is None


def test_a_revoked_session_is_inactive_and_revoke_all_ends_only_that_users_sessions(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        for session_id, user_id in [("s1", "u1"), ("s2", "u1"), ("s3", "u2")]:
            unit.sessions.create(session_id, user_id, T0)
        unit.sessions.revoke_all("u1", T0)
        unit.commit()
    with uow() as unit:
        assert [unit.sessions.is_active(s) for s in ("s1", "s2", "s3", "nope")] == [False, False, True, False]


def test_a_session_remembers_when_its_login_happened(uow):
    add_user(uow)
    with uow() as unit:
        unit.sessions.create("s1", "u1", T0)
        unit.commit()
    with uow() as unit:
        assert unit.sessions.started_at("s1") == T0
        assert unit.sessions.started_at("nope") is None


def test_a_refresh_token_can_be_marked_used(uow):
    add_user(uow)
    with uow() as unit:
        unit.sessions.create("s1", "u1", T0)
        unit.sessions.add_refresh(RefreshRecord("h1", "s1", "u1", T0, False))
        unit.sessions.mark_refresh_used("h1")
        unit.commit()
    with uow() as unit:
        assert unit.sessions.get_refresh("h1") == RefreshRecord("h1", "s1", "u1", T0, True)


# --- goals --------------------------------------------------------------------------


def test_a_second_goal_for_the_same_metric_and_period_already_exists(uow):
    add_user(uow)
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", period=GoalPeriod.WEEKLY))
        with pytest.raises(AlreadyExists):
            unit.goals.add(goal("g3"))


def test_goals_are_listed_oldest_first_and_inactive_ones_only_on_request(uow):
    add_user(uow)
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", period=GoalPeriod.WEEKLY, active=False))
        unit.commit()
    with uow() as unit:
        assert [g.goal_id for g in unit.goals.list_for_user("u1")] == ["g1"]
        assert [g.goal_id for g in unit.goals.list_for_user("u1", include_inactive=True)] == ["g1", "g2"]


# --- notifications ------------------------------------------------------------------


def test_a_notification_with_a_seen_idempotency_key_is_dropped(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.notifications.add(notification("n1", key="k"))
        assert not unit.notifications.add(notification("n2", key="k"))
        assert [n.notification_id for n in unit.notifications.page("u1", False, 10, None).notifications] == ["n1"]


def test_notification_pages_are_newest_first_and_continue_from_their_cursor(uow):
    add_user(uow)
    with uow() as unit:
        for i in range(5):
            unit.notifications.add(notification(f"n{i}"))
        first = unit.notifications.page("u1", False, 2, None)
        second = unit.notifications.page("u1", False, 2, first.next_cursor)
        third = unit.notifications.page("u1", False, 2, second.next_cursor)
    assert [[n.notification_id for n in p.notifications] for p in (first, second, third)] == [
        ["n4", "n3"],
        ["n2", "n1"],
        ["n0"],
    ]
    assert third.next_cursor is None
    assert first.unread_count == 5


def test_marking_read_with_one_foreign_id_marks_nothing(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.notifications.add(notification("mine"))
        unit.notifications.add(notification("theirs", "u2"))
        with pytest.raises(NotFound):
            unit.notifications.mark_read("u1", ["mine", "theirs"])
        assert unit.notifications.page("u1", True, 10, None).unread_count == 1
        assert unit.notifications.mark_read("u1", ["mine"]) == 1
        assert unit.notifications.mark_read("u1", ["mine"]) == 0


# --- metric store and bus -----------------------------------------------------------


def placed(minute: int, value: float, day: date = DAY) -> PlacedReading:
    return PlacedReading(MetricKind.STEPS, minute, value, day)


def test_preferences_default_to_on_without_quiet_hours_and_are_kept_as_set(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1")
        unit.preferences.put(NotificationPreferences("u1", False, time(22, 0), time(7, 30)))
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get_many(["u1", "u2"]) == {
            "u1": NotificationPreferences("u1", False, time(22, 0), time(7, 30)),
            "u2": NotificationPreferences("u2"),
        }
        unit.preferences.put(NotificationPreferences("u1", True))
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1", True)
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1")


def test_a_goals_notify_switch_is_stored_and_changed(uow):
    add_user(uow)
    add_goals(uow, replace(goal(), notify=False))
    with uow() as unit:
        assert unit.goals.get("g1").notify is False
        unit.goals.update(replace(unit.goals.get("g1"), notify=True))
        unit.commit()
    with uow() as unit:
        assert unit.goals.get("g1").notify is True


def test_the_goals_to_evaluate_come_zone_by_zone_a_page_of_users_at_a_time(uow):
    for n, zone in enumerate(["Asia/Tokyo", "Europe/Paris", "Europe/Paris", "Europe/Paris", "Europe/Paris"]):
        add_user(uow, f"u{n}", f"user{n}", zone)
    weekly = replace(goal("g1w", "u1", GoalPeriod.WEEKLY), metric=MetricKind.DISTANCE)
    add_goals(
        uow,
        goal("g0", "u0"),
        goal("g1", "u1"),
        weekly,
        goal("g2", "u2", active=False),
        replace(goal("g3", "u3"), notify=False),
        goal("g4", "u4"),
    )
    with uow() as unit:
        assert unit.users.time_zones() == ["Asia/Tokyo", "Europe/Paris"]
        assert unit.users.ids_in_zone("Europe/Paris", "", 3) == ["u1", "u2", "u3"]
        assert unit.users.ids_in_zone("Europe/Paris", "u3", 3) == ["u4"]
        assert unit.goals.zones_with_notified_goals() == ["Asia/Tokyo", "Europe/Paris"]
        first = unit.goals.notified_goals_in_zone("Europe/Paris", "", 1)
        assert sorted(g.goal_id for g in first) == ["g1", "g1w"]
        # Users whose goals are all off or silenced are skipped, not returned as empty pages.
        assert [g.goal_id for g in unit.goals.notified_goals_in_zone("Europe/Paris", "u1", 1)] == ["g4"]
        assert unit.goals.notified_goals_in_zone("Europe/Paris", "u4", 1) == []


def test_a_resent_minute_replaces_its_value_and_keeps_its_original_day(store):
    assert store.upsert_minutes("u1", "watch", [placed(100, 10)]) == {(MetricKind.STEPS, DAY)}
    other_day = DAY - timedelta(days=1)
    assert store.upsert_minutes("u1", "watch", [placed(100, 30, other_day)]) == {(MetricKind.STEPS, DAY)}
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 30.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, other_day) == {}


def test_a_minute_another_source_placed_keeps_that_day_after_a_time_zone_change(store):
    # The watch placed minute 100 on DAY; after the user moved, the phone's copy
    # of the same minute comes with the day before. Counting it there as well
    # would count the minute twice across the two days.
    store.upsert_minutes("u1", "watch", [placed(100, 10)])
    other_day = DAY - timedelta(days=1)
    assert store.upsert_minutes("u1", "phone", [placed(100, 20, other_day)]) == {(MetricKind.STEPS, DAY)}
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}, "phone": {100: 20.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, other_day) == {}


def test_minutes_are_kept_per_source(store):
    store.upsert_minutes("u1", "watch", [placed(100, 10)])
    store.upsert_minutes("u1", "phone", [placed(100, 20), placed(101, 5)])
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}, "phone": {100: 20.0, 101: 5.0}}


def test_a_minute_resent_with_the_next_day_keeps_the_day_it_was_first_placed_on(store):
    store.upsert_minutes("u1", "watch", [placed(100, 10)])
    next_day = DAY + timedelta(days=1)
    assert store.upsert_minutes("u1", "phone", [placed(100, 20, next_day), placed(101, 5, next_day)]) == {
        (MetricKind.STEPS, DAY),
        (MetricKind.STEPS, next_day),
    }
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}, "phone": {100: 20.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, next_day) == {"phone": {101: 5.0}}


def test_a_minute_stays_put_across_the_widest_time_zone_jump(store):
    # 11:00 UTC is 01:00 the next day at UTC+14 and 23:00 the day before at UTC-12: two days apart.
    noon = int(datetime(2026, 6, 10, 11, 0, tzinfo=UTC).timestamp()) // 60
    east, west = local_date_of(noon, ZoneInfo("Pacific/Kiritimati")), local_date_of(noon, ZoneInfo("Etc/GMT+12"))
    assert (east - west).days == 2
    store.upsert_minutes("u1", "watch", [PlacedReading(MetricKind.STEPS, noon, 10, east)])
    assert store.upsert_minutes("u1", "phone", [PlacedReading(MetricKind.STEPS, noon, 12, west)]) == {
        (MetricKind.STEPS, east)
    }
    assert store.minutes_of_day("u1", MetricKind.STEPS, east) == {"watch": {noon: 10.0}, "phone": {noon: 12.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, west) == {}


def test_a_minute_repeated_in_one_write_keeps_the_day_it_came_with_first_and_its_last_value(store):
    other_day = DAY - timedelta(days=1)
    readings = [placed(100, 1), placed(101, 2, other_day), placed(100, 3, other_day), placed(101, 4)]
    assert store.upsert_minutes("u1", "watch", readings) == {(MetricKind.STEPS, DAY), (MetricKind.STEPS, other_day)}
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 3.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, other_day) == {"watch": {101: 4.0}}


def test_minutes_stored_out_of_order_and_over_earlier_ones_all_read_back(store):
    store.upsert_minutes("u1", "watch", [placed(minute, minute) for minute in range(200, 210)])
    store.upsert_minutes("u1", "watch", [placed(205, 1), placed(102, 2), placed(100, 3), placed(300, 4)])
    expected = {minute: float(minute) for minute in range(200, 210)} | {205: 1.0, 102: 2.0, 100: 3.0, 300: 4.0}
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": expected}


def test_each_metric_and_day_of_one_write_is_kept_apart(store):
    heart = PlacedReading(MetricKind.HEART_RATE, 100, 70, DAY)
    next_day = DAY + timedelta(days=1)
    assert store.upsert_minutes("u1", "watch", [placed(100, 1), heart, placed(2000, 2, next_day)]) == {
        (MetricKind.STEPS, DAY),
        (MetricKind.HEART_RATE, DAY),
        (MetricKind.STEPS, next_day),
    }
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 1.0}}
    assert store.minutes_of_day("u1", MetricKind.HEART_RATE, DAY) == {"watch": {100: 70.0}}
    assert store.minutes_of_day("u1", MetricKind.STEPS, next_day) == {"watch": {2000: 2.0}}


def test_writes_grouped_together_are_read_back_inside_the_group_and_kept_after_it(store):
    with store.grouped():
        store.upsert_minutes("u1", "watch", [placed(100, 10)])
        assert store.upsert_minutes("u1", "phone", [placed(100, 20, DAY - timedelta(days=1))]) == {
            (MetricKind.STEPS, DAY)
        }
        assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}, "phone": {100: 20.0}}
        store.save_days("u1", MetricKind.STEPS, [DaySummary(DAY, 20.0, 20.0, 20.0, 1)])
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}, "phone": {100: 20.0}}
    assert store.days("u1", MetricKind.STEPS, DAY, DAY) == [DaySummary(DAY, 20.0, 20.0, 20.0, 1)]


def test_deleting_a_user_removes_their_minutes_and_no_one_elses(store):
    for user_id in ("u1", "u2"):
        store.upsert_minutes(user_id, "watch", [placed(100, 10)])
    store.delete_user("u1")
    assert store.minutes_of_day("u1", MetricKind.STEPS, DAY) == {}
    assert store.minutes_of_day("u2", MetricKind.STEPS, DAY) == {"watch": {100: 10.0}}


def test_stored_days_are_returned_in_order_within_the_range_and_deleted_with_the_user(store):
    days = [DaySummary(DAY + timedelta(days=n), 10.0 * n, 1.0, 2.0, 3) for n in (2, 0, 5)]
    store.save_days("u1", MetricKind.STEPS, days)
    store.save_days("u1", MetricKind.STEPS, [DaySummary(DAY, 99.0, 1.0, 2.0, 3)])
    assert [(d.day, d.value) for d in store.days("u1", MetricKind.STEPS, DAY, DAY + timedelta(days=4))] == [
        (DAY, 99.0),
        (DAY + timedelta(days=2), 20.0),
    ]
    store.delete_user("u1")
    assert store.days("u1", MetricKind.STEPS, DAY, DAY + timedelta(days=9)) == []


def test_daily_totals_of_many_users_come_back_in_one_call_within_the_range(store):
    first, last = DAY - timedelta(days=2), DAY
    store.save_days("u1", MetricKind.STEPS, [DaySummary(first, 100.0), DaySummary(DAY, 300.0)])
    store.save_days("u1", MetricKind.DISTANCE, [DaySummary(DAY, 2_500.0)])
    store.save_days("u2", MetricKind.STEPS, [DaySummary(DAY - timedelta(days=3), 50.0)])
    store.save_days("u3", MetricKind.STEPS, [DaySummary(DAY - timedelta(days=1), 70.0)])
    found = store.daily_totals(["u1", "u2", "u3", "nobody"], [MetricKind.STEPS, MetricKind.DISTANCE], first, last)
    assert found == {
        "u1": {MetricKind.STEPS: {first: 100.0, DAY: 300.0}, MetricKind.DISTANCE: {DAY: 2_500.0}},
        "u3": {MetricKind.STEPS: {DAY - timedelta(days=1): 70.0}},
    }
    assert store.daily_totals(["u1"], [MetricKind.CALORIES_BURNED], first, last) == {}


def test_the_bus_accepts_each_sequence_once_per_device_even_out_of_order(bus):
    def batch(sequence: int, source: str = "watch") -> AcceptedBatch:
        return AcceptedBatch("u1", source, sequence, (placed(100, 1),))

    assert bus.publish([batch(1), batch(1), batch(3), batch(2), batch(2), batch(1, "phone")]) == [
        PublishOutcome.ACCEPTED,
        PublishOutcome.DUPLICATE,
        PublishOutcome.ACCEPTED,
        PublishOutcome.ACCEPTED,
        PublishOutcome.DUPLICATE,
        PublishOutcome.ACCEPTED,
    ]
    assert bus.cursor("u1", "watch") == DeviceCursor(3, 0b11)
    assert (bus.cursor("u1", "phone").highest, bus.cursor("u2", "watch").highest) == (1, 0)
    assert bus.publish([batch(0), batch(0)]) == [PublishOutcome.ACCEPTED, PublishOutcome.ACCEPTED]


def test_the_bus_reports_the_gaps_below_the_highest_durable_sequence(bus):
    def batch(sequence: int) -> AcceptedBatch:
        return AcceptedBatch("u1", "watch", sequence, (placed(100, 1),))

    bus.publish([batch(1), batch(2), batch(5), batch(7)])
    cursor = bus.cursor("u1", "watch")
    assert (cursor.highest, cursor.missing()) == (7, [3, 4, 6])


def test_the_bus_resolves_many_submissions_made_at_once_each_with_its_own_outcomes(bus):
    def batch(user_id: str, sequence: int) -> AcceptedBatch:
        return AcceptedBatch(user_id, "watch", sequence, (placed(100, 1),))

    futures = [bus.submit([batch(f"u{n % 7}", n // 7 + 1)]) for n in range(700)]
    futures.append(bus.submit([batch("u1", 90), batch("u1", 101)]))
    outcomes = [future.result(timeout=30) for future in futures]
    assert outcomes[:700] == [[PublishOutcome.ACCEPTED]] * 700
    assert outcomes[700] == [PublishOutcome.DUPLICATE, PublishOutcome.ACCEPTED]
    assert bus.cursor("u3", "watch") == DeviceCursor(100, (1 << 63) - 1)


# --- notification delivery ----------------------------------------------------------

LEASE = T0 + timedelta(seconds=11)


def stored_with_deliveries(uow, *notifications: Notification, due: datetime = T0) -> None:
    with uow() as unit:
        for each in notifications:
            assert unit.notifications.add(each)
            unit.deliveries.add(Delivery(each.notification_id, each.user_id, due, T0))
        unit.commit()


def claimed(uow, now: datetime = T0, limit: int = 10, ids=None) -> list[tuple[Delivery, Notification]]:
    with uow() as unit:
        taken = unit.deliveries.claim(now, now + timedelta(seconds=11), limit, ids)
        unit.commit()
    return taken


def delivery_states(uow, *notifications: Notification) -> dict[str, Delivery]:
    with uow() as unit:
        return unit.deliveries.get_many([n.notification_id for n in notifications])


def test_users_and_goals_are_fetched_many_at_once(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    add_goals(uow, goal("g1"), goal("g2", "u2"))
    with uow() as unit:
        assert set(unit.users.get_many(["u1", "u2", "nobody"])) == {"u1", "u2"}
        assert unit.users.get_many([]) == {}
        assert {g.user_id for g in unit.goals.get_many(["g1", "g2", "gone"]).values()} == {"u1", "u2"}


def test_stored_nudges_are_counted_per_user_and_local_day(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    june_10, june_11 = DAY, DAY + timedelta(days=1)

    def nudge(notification_id: str, user_id: str, day: date) -> Notification:
        return replace(notification(notification_id, user_id), kind=NotificationKind.BEHIND_GOAL, local_date=day)

    with uow() as unit:
        for each in (nudge("n1", "u1", june_10), nudge("n2", "u1", june_10), nudge("n3", "u2", june_11)):
            unit.notifications.add(each)
        unit.notifications.add(replace(notification("n4"), local_date=june_10))  # another kind
        unit.commit()
    with uow() as unit:
        counts = unit.notifications.count_on_days(
            NotificationKind.BEHIND_GOAL, [("u1", june_10), ("u1", june_11), ("u2", june_11)]
        )
    assert counts == {("u1", june_10): 2, ("u1", june_11): 0, ("u2", june_11): 1}


def test_a_notification_has_one_delivery_however_often_it_is_recorded(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"))
    with uow() as unit:
        unit.deliveries.add(Delivery("n1", "u1", T0 + timedelta(days=1), T0, 5, DeliveryState.DEAD, "x"))
        unit.commit()
    assert delivery_states(uow, notification("n1"))["n1"] == Delivery("n1", "u1", T0, T0)


def test_a_claim_takes_due_pending_deliveries_oldest_first_and_leases_them(uow):
    add_user(uow)
    first, second, later = notification("n1"), notification("n2"), notification("n3")
    stored_with_deliveries(uow, second)
    stored_with_deliveries(uow, first, due=T0 - timedelta(minutes=1))
    stored_with_deliveries(uow, later, due=T0 + timedelta(minutes=1))
    taken = claimed(uow)
    assert [(d.notification_id, d.attempts, d.due_at) for d, _ in taken] == [("n1", 1, LEASE), ("n2", 1, LEASE)]
    assert [n.notification_id for _, n in taken] == ["n1", "n2"]
    assert taken[0][1].title == first.title
    # Leased: nobody else finds them due until the lease ends.
    assert claimed(uow) == []
    assert {d.notification_id for d, _ in claimed(uow, LEASE, limit=5)} == {"n1", "n2"}
    with uow() as unit:
        assert unit.deliveries.next_due() == LEASE + timedelta(seconds=11)


def test_a_claim_can_be_limited_to_named_notifications(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"), notification("n2"))
    assert [d.notification_id for d, _ in claimed(uow, ids=["n2"])] == ["n2"]
    assert claimed(uow, ids=[]) == []
    assert [d.notification_id for d, _ in claimed(uow, limit=1)] == ["n1"]


def test_settling_a_delivery_no_longer_as_claimed_changes_nothing(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"))
    ((overtaken, _),) = claimed(uow)
    ((current, _),) = claimed(uow, LEASE)  # a dispatcher that outlived its lease is overtaken
    with uow() as unit:
        assert not unit.deliveries.settle(replace(overtaken, state=DeliveryState.DELIVERED))
        assert unit.deliveries.settle(replace(current, state=DeliveryState.DELIVERED, last_error="ok"))
        unit.commit()
    settled = delivery_states(uow, notification("n1"))["n1"]
    assert (settled.state, settled.attempts, settled.last_error) == (DeliveryState.DELIVERED, 2, "ok")
    with uow() as unit:
        assert not unit.deliveries.settle(replace(current, state=DeliveryState.DEAD))
        assert unit.deliveries.next_due() is None


def test_dead_deliveries_are_listed_newest_first_and_replayed(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"), notification("n2"), notification("n3"))
    with uow() as unit:
        for number, (delivery, _) in enumerate(unit.deliveries.claim(T0, LEASE, 10)):
            dead = delivery.notification_id != "n3"
            unit.deliveries.settle(
                replace(
                    delivery,
                    state=DeliveryState.DEAD if dead else DeliveryState.PENDING,
                    updated_at=T0 + timedelta(minutes=number),
                    last_error=f"HTTP 50{number}",
                )
            )
        unit.commit()
    with uow() as unit:
        letters = unit.deliveries.dead(10)
    assert [(d.notification_id, d.last_error, n.notification_id) for d, n in letters] == [
        ("n2", "HTTP 501", "n2"),
        ("n1", "HTTP 500", "n1"),
    ]
    later = T0 + timedelta(hours=1)
    with uow() as unit:
        assert unit.deliveries.replay(["n1", "n3", "nobody"], later) == ["n1"]
        assert set(unit.deliveries.replay(None, later)) == {"n2"}
        unit.commit()
    replayed = delivery_states(uow, notification("n1"))["n1"]
    assert (replayed.state, replayed.attempts, replayed.due_at) == (DeliveryState.PENDING, 0, later)
    with uow() as unit:
        assert unit.deliveries.dead(10) == []


def test_deleting_a_user_deletes_their_deliveries(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    stored_with_deliveries(uow, notification("n1"), notification("n2", "u2"))
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    assert list(delivery_states(uow, notification("n1"), notification("n2"))) == ["n2"]


# --- account security ------------------------------------------------------------


def test_login_failures_are_kept_per_username_until_cleared(uow):
    record = LoginFailures("alice", T0, 3, 1, T0 + timedelta(hours=1), T0 + timedelta(minutes=5))
    with uow() as unit:
        assert unit.login_failures.get("alice") is None
        unit.login_failures.put(record)
        unit.login_failures.put(LoginFailures("nobody", T0, 1))  # no such user: counted all the same
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("alice") == record
        assert unit.login_failures.get("nobody") == LoginFailures("nobody", T0, 1)
        unit.login_failures.put(LoginFailures("alice", T0, 4))
        unit.login_failures.clear("nobody")
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("alice") == LoginFailures("alice", T0, 4)
        assert unit.login_failures.get("nobody") is None


def test_address_failures_come_back_newest_first_within_the_span_and_at_most_the_limit(uow):
    seconds = [0, 10, 20, 30, 40]
    with uow() as unit:
        for second in seconds:
            unit.address_failures.add("192.0.2.1", T0 + timedelta(seconds=second), T0 - timedelta(minutes=1))
        unit.address_failures.add("2001:db8::/64", T0 + timedelta(seconds=15), T0 - timedelta(minutes=1))
        unit.commit()
    with uow() as unit:
        recent = unit.address_failures.recent("192.0.2.1", T0, T0 + timedelta(seconds=40), 3)
        assert recent == [T0 + timedelta(seconds=s) for s in (40, 30, 20)]
        assert unit.address_failures.recent("192.0.2.1", T0 + timedelta(seconds=5), T0 + timedelta(seconds=25), 9) == [
            T0 + timedelta(seconds=20),
            T0 + timedelta(seconds=10),
        ]
        assert unit.address_failures.recent("2001:db8::/64", T0, T0 + timedelta(minutes=1), 9) == [
            T0 + timedelta(seconds=15)
        ]
        assert unit.address_failures.recent("192.0.2.2", T0 - timedelta(days=1), T0 + timedelta(days=1), 9) == []


def test_recording_an_address_failure_drops_that_addresss_older_ones_and_forget_before_everyones(uow):
    with uow() as unit:
        for address in ("192.0.2.1", "192.0.2.2"):
            unit.address_failures.add(address, T0, T0 - timedelta(minutes=1))
        unit.address_failures.add("192.0.2.1", T0 + timedelta(minutes=2), T0 + timedelta(minutes=1))
        unit.commit()
    everything = (T0 - timedelta(days=1), T0 + timedelta(days=1), 9)
    with uow() as unit:
        assert unit.address_failures.recent("192.0.2.1", *everything) == [T0 + timedelta(minutes=2)]
        assert unit.address_failures.recent("192.0.2.2", *everything) == [T0]
        assert unit.address_failures.forget_before(T0 + timedelta(minutes=1)) == 1
        unit.commit()
    with uow() as unit:
        assert unit.address_failures.recent("192.0.2.2", *everything) == []
        assert unit.address_failures.recent("192.0.2.1", *everything) == [T0 + timedelta(minutes=2)]


def test_login_failures_last_seen_before_a_moment_are_forgotten(uow):
    with uow() as unit:
        unit.login_failures.put(LoginFailures("old", T0, 1, last_failure=T0 - timedelta(days=2)))
        unit.login_failures.put(LoginFailures("recent", T0, 1, last_failure=T0))
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.forget_before(T0 - timedelta(days=1)) == 1
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("old") is None
        assert unit.login_failures.get("recent") is not None


# --- evaluation claims -----------------------------------------------------------

SLOT_KEY = "slot|Europe/Paris|2026-06-10|11:00"
WORK_LEASE = timedelta(minutes=5)


def claim_work(uow, holder: str, now: datetime, key: str = SLOT_KEY) -> bool:
    with uow() as unit:
        taken = unit.evaluation_claims.claim(key, holder, now, now + WORK_LEASE)
        unit.commit()
    return taken


def test_evaluation_work_is_claimed_by_one_evaluator_while_its_lease_runs(uow):
    assert claim_work(uow, "e1", T0) is True
    assert claim_work(uow, "e2", T0 + timedelta(minutes=1)) is False
    # Renewing: the holder claims again and its lease runs five more minutes.
    assert claim_work(uow, "e1", T0 + timedelta(minutes=4)) is True
    assert claim_work(uow, "e2", T0 + timedelta(minutes=8)) is False
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + timedelta(minutes=8), 10) == []


def test_work_left_unfinished_is_abandoned_once_its_lease_ran_out_and_another_may_take_it(uow):
    claim_work(uow, "e1", T0)
    claim_work(uow, "e1", T0 - timedelta(minutes=1), key="report|Europe/Paris|2026-06-08|08:00")
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + WORK_LEASE, 10) == ["report|Europe/Paris|2026-06-08|08:00"]
        assert unit.evaluation_claims.abandoned(T0 + WORK_LEASE + timedelta(seconds=1), 1) == [
            "report|Europe/Paris|2026-06-08|08:00"
        ]
    assert claim_work(uow, "e2", T0 + WORK_LEASE + timedelta(seconds=1)) is True
    assert claim_work(uow, "e1", T0 + WORK_LEASE + timedelta(seconds=2)) is False


def test_finished_work_is_never_claimed_again_nor_abandoned(uow):
    claim_work(uow, "e1", T0)
    with uow() as unit:
        unit.evaluation_claims.finish(SLOT_KEY, "e2", T0)  # not the holder: changes nothing
        unit.commit()
    assert claim_work(uow, "e1", T0) is True
    with uow() as unit:
        unit.evaluation_claims.finish(SLOT_KEY, "e1", T0)
        unit.commit()
    assert claim_work(uow, "e1", T0) is False
    assert claim_work(uow, "e2", T0 + timedelta(days=1)) is False
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + timedelta(days=1), 10) == []


def test_a_claim_not_committed_holds_nothing(uow):
    with uow() as unit:
        assert unit.evaluation_claims.claim(SLOT_KEY, "e1", T0, T0 + WORK_LEASE) is True
    assert claim_work(uow, "e2", T0) is True


def test_claims_whose_lease_ended_before_a_moment_are_forgotten(uow):
    claim_work(uow, "e1", T0 - timedelta(days=3))
    claim_work(uow, "e1", T0, key="slot|UTC|2026-06-10|16:00")
    with uow() as unit:
        assert unit.evaluation_claims.forget_before(T0 - timedelta(days=2)) == 1
        unit.commit()
    assert claim_work(uow, "e2", T0 - timedelta(days=3)) is True
    assert claim_work(uow, "e2", T0, key="slot|UTC|2026-06-10|16:00") is False


def test_login_failures_not_committed_are_discarded(uow):
    with uow() as unit:
        unit.login_failures.put(LoginFailures("alice", T0, 1))
    with uow() as unit:
        assert unit.login_failures.get("alice") is None


def test_expiring_passwords_are_found_by_zone_and_range_a_page_at_a_time(uow):
    expiries = {"u1": T0, "u2": T0 + timedelta(hours=23), "u3": T0 + timedelta(days=1), "u4": T0}
    with uow() as unit:
        for user_id, expires in expiries.items():
            zone = "Asia/Tokyo" if user_id == "u4" else "Europe/Paris"
            new, _ = user(user_id, f"name-{user_id}", zone)
            unit.users.add(new, Credentials(user_id, b"hash", T0 - timedelta(days=90), expires))
        new, _ = user("u5", "never", "Europe/Paris")
        unit.users.add(new, Credentials("u5", b"hash", T0, None))
        unit.commit()
    end = T0 + timedelta(days=1)
    with uow() as unit:
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "", 10) == [("u1", T0), ("u2", expiries["u2"])]
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "", 1) == [("u1", T0)]
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "u1", 10) == [("u2", expiries["u2"])]
        assert unit.users.expiring_in_zone("Asia/Tokyo", T0, end, "", 10) == [("u4", T0)]


# --- single sign-on identities ------------------------------------------------------

ISSUER = "https://id.example.test"


def test_a_provider_login_is_linked_to_one_account_and_found_by_issuer_and_subject(uow):
    add_user(uow, "u1", "alice")
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.identities.add(ExternalIdentity("https://other.example.test", "sub-1", "u2", T0))
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") == ExternalIdentity(ISSUER, "sub-1", "u1", T0)
        assert unit.identities.get("https://other.example.test", "sub-1").user_id == "u2"
        assert unit.identities.get(ISSUER, "sub-2") is None
        assert unit.identities.get(ISSUER + "/", "sub-1") is None  # issuers compare exactly
        assert unit.identities.for_user("u1") == [ExternalIdentity(ISSUER, "sub-1", "u1", T0)]


def test_linking_a_linked_provider_login_again_is_refused_and_the_unit_stays_usable(uow):
    add_user(uow, "u1", "alice")
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.commit()
    with uow() as unit:
        with pytest.raises(AlreadyExists):
            unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u2", T0))
        unit.identities.add(ExternalIdentity(ISSUER, "sub-2", "u2", T0))
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1").user_id == "u1"
        assert unit.identities.get(ISSUER, "sub-2").user_id == "u2"


def test_an_account_made_by_single_sign_on_has_no_password(uow):
    with uow() as unit:
        unit.users.add(User("u1", "alice", Profile(), T0), None)
        unit.commit()
    with uow() as unit:
        assert unit.users.get("u1").username == "alice"
        assert unit.users.get_credentials("u1") is None


def test_deleting_a_user_removes_their_provider_logins(uow):
    add_user(uow, "u1", "alice")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.commit()
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") is None
        assert unit.identities.for_user("u1") == []


def test_a_provider_login_is_not_linked_without_committing(uow):
    add_user(uow, "u1", "alice")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        assert unit.identities.use_nonce(ISSUER, "n1", T0 + timedelta(minutes=5), T0)
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") is None
        assert unit.identities.use_nonce(ISSUER, "n1", T0 + timedelta(minutes=5), T0)


def test_a_nonce_is_accepted_once_per_issuer_until_its_token_expires(uow):
    until = T0 + timedelta(minutes=5)
    with uow() as unit:
        assert unit.identities.use_nonce(ISSUER, "n1", until, T0)
        assert not unit.identities.use_nonce(ISSUER, "n1", until, T0)
        assert unit.identities.use_nonce("https://other.example.test", "n1", until, T0)
        unit.commit()
    with uow() as unit:
        assert not unit.identities.use_nonce(ISSUER, "n1", until, T0 + timedelta(minutes=4))
        # Past its token's expiry the record is forgotten: the token itself is refused as expired by then.
        assert unit.identities.use_nonce(ISSUER, "n1", until + timedelta(minutes=5), until)
        unit.commit()


# --- the small fakes ----------------------------------------------------------------


def test_the_fake_hasher_rejects_a_wrong_password():
    hasher = FakeHasher()
    stored = hasher.hash("correct horse")
    assert hasher.verify("correct horse", stored)
    assert not hasher.verify("correct hors", stored)
    assert not hasher.verify("correct horse", b"correct horse")


def test_the_fake_clock_stands_still_until_moved():
    clock = FakeClock(T0)
    assert clock() == clock() == T0
    clock.advance(timedelta(hours=1))
    assert clock() == T0 + timedelta(hours=1)
