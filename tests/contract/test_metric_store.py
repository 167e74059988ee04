"""The metric store keeps the same promises in every backend: the fake, SQLite and MongoDB (FerretDB)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.metrics import MetricKind, PlacedReading, local_date_of
from tests.contract.builders import DAY, placed


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
