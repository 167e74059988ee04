"""The day-placement rule on its own: which local day each minute of a write is counted on."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fittrack.core.domain.metrics import MetricKind, PlacedReading, local_date_of
from fittrack.core.domain.placement import Write, place_minutes

STEPS, HEART = MetricKind.STEPS, MetricKind.HEART_RATE
PARIS, TOKYO, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
DAY = date(2026, 6, 10)
BEFORE, AFTER = DAY - timedelta(days=1), DAY + timedelta(days=1)


def minute_at(hour: int, minute: int = 0, day: date = DAY) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).timestamp()) // 60


EVENING = minute_at(21, 30)  # 23:30 on DAY in Paris, 06:30 the day after in Tokyo, 17:30 on DAY in New York
NIGHT = minute_at(2)  # 04:00 on DAY in Paris, 22:00 the day before in New York


def reading(minute: int, value: float, zone: ZoneInfo = PARIS, metric: MetricKind = STEPS) -> PlacedReading:
    return PlacedReading(metric, minute, value, local_date_of(minute, zone))


def placed(readings: list[PlacedReading], held: dict) -> dict:
    return place_minutes(Write.of(readings), held)


def by_hand(minute: int, value: float, day: date, metric: MetricKind = STEPS) -> PlacedReading:
    return PlacedReading(metric, minute, value, day)


def test_a_minute_no_source_holds_yet_is_counted_on_the_day_it_comes_with():
    assert placed([reading(EVENING, 10, TOKYO)], {}) == {(STEPS, AFTER): {EVENING: 10}}


def test_a_minute_resent_after_flying_east_stays_on_the_day_it_was_first_placed_on():
    held = {(STEPS, DAY): {EVENING}}
    assert placed([reading(EVENING, 12, TOKYO), reading(EVENING + 1, 3, TOKYO)], held) == {
        (STEPS, DAY): {EVENING: 12},
        (STEPS, AFTER): {EVENING + 1: 3},
    }


def test_a_minute_resent_after_flying_west_stays_on_the_day_it_was_first_placed_on():
    assert local_date_of(NIGHT, NEW_YORK) == BEFORE
    assert placed([reading(NIGHT, 12, NEW_YORK)], {(STEPS, DAY): {NIGHT}}) == {(STEPS, DAY): {NIGHT: 12}}


def test_a_minute_stays_put_across_the_widest_time_zone_jump():
    # 11:00 UTC is 01:00 the next day at UTC+14 and 23:00 the day before at UTC-12: two days apart.
    noon = minute_at(11)
    east, west = ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")
    held = {(STEPS, local_date_of(noon, east)): {noon}}
    assert placed([reading(noon, 12, west)], held) == {(STEPS, local_date_of(noon, east)): {noon: 12}}


def test_another_metrics_copy_of_the_minute_does_not_pin_it():
    held = {(HEART, DAY): {EVENING}}
    assert placed([reading(EVENING, 12, TOKYO)], held) == {(STEPS, AFTER): {EVENING: 12}}


def test_a_minute_repeated_in_one_write_keeps_the_day_it_came_with_first_and_its_last_value():
    write = [reading(EVENING, 1, PARIS), reading(EVENING, 2, TOKYO), reading(EVENING + 1, 3, TOKYO)]
    assert placed(write, {}) == {(STEPS, DAY): {EVENING: 2}, (STEPS, AFTER): {EVENING + 1: 3}}


def test_of_a_minute_a_past_double_write_left_on_two_days_the_earlier_day_wins():
    on_both = {(STEPS, DAY): {EVENING}, (STEPS, AFTER): {EVENING}}
    assert placed([reading(EVENING, 5, PARIS)], on_both) == {(STEPS, DAY): {EVENING: 5}}
    assert placed([reading(EVENING, 5, TOKYO)], on_both) == {(STEPS, DAY): {EVENING: 5}}


def test_a_minute_is_not_looked_for_on_a_day_it_falls_on_in_no_time_zone():
    # 21:30 UTC is on DAY or the day after in every time zone: a copy the day before was never placed by one.
    assert placed([reading(EVENING, 5)], {(STEPS, BEFORE): {EVENING}}) == {(STEPS, DAY): {EVENING: 5}}


def test_a_minute_placed_by_hand_is_looked_for_on_the_days_next_to_the_one_it_comes_with():
    # Minute 100 is in 1970: DAY is no time zone's day for it, so only a hand could have placed it there.
    held = {(STEPS, BEFORE): {100}}
    assert placed([by_hand(100, 5, DAY), by_hand(101, 6, DAY)], held) == {
        (STEPS, BEFORE): {100: 5},
        (STEPS, DAY): {101: 6},
    }
    assert placed([by_hand(100, 5, DAY + timedelta(days=2))], held) == {(STEPS, DAY + timedelta(days=2)): {100: 5}}


def test_a_store_looks_up_only_the_days_a_minute_can_be_on_already():
    # A Paris morning is the day before at UTC-12 and the same day at UTC+14: never the day after.
    morning = minute_at(7)
    lookups = Write.of([reading(morning + n, 1) for n in range(60)] + [reading(morning, 70, metric=HEART)]).lookups
    assert {metric: sorted(lookup.days) for metric, lookup in lookups.items()} == {
        STEPS: [BEFORE, DAY],
        HEART: [BEFORE, DAY],
    }
    assert (lookups[STEPS].first, lookups[STEPS].last) == (morning, morning + 59)
