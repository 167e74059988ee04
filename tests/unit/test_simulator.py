import argparse
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.clients.activity import (
    ACTIVE_MINUTES,
    CALORIES,
    DISTANCE,
    HEART_RATE,
    STEPS,
    day_seed,
    merged_daily_totals,
    simulate_day,
    simulate_phone,
    within_hours,
)
from fittrack.clients.command_line import days_problem, number, plural, whole_number
from fittrack.clients.fleet import FleetPlan, FleetReport
from fittrack.clients.sync import DeviceStats

A_WEEK = [date(2026, 11, 16) + timedelta(days=offset) for offset in range(7)]


def total(readings, kind) -> float:
    return sum(value for metric, _, value in readings if metric == kind)


@pytest.mark.parametrize("day", A_WEEK, ids=str)
def test_every_reading_is_within_what_one_minute_can_hold(day):
    limits = {STEPS: (0, 1000), CALORIES: (0, 100), DISTANCE: (0, 1500), HEART_RATE: (20, 250)}
    for seed in range(20):
        for metric, _, value in simulate_day(day, "Europe/Paris", seed):
            if metric == ACTIVE_MINUTES:
                assert value in (0, 1)
            else:
                low, high = limits[metric]
                assert low <= value <= high, (metric, value)


def test_the_same_seed_gives_the_same_day_and_another_seed_a_different_one():
    day = date(2026, 11, 24)
    assert simulate_day(day, "America/New_York", 42) == simulate_day(day, "America/New_York", 42)
    assert simulate_day(day, "America/New_York", 42) != simulate_day(day, "America/New_York", 43)


@pytest.mark.parametrize("day", A_WEEK, ids=str)
def test_the_days_step_total_is_what_a_person_walks(day):
    for seed in range(30):
        assert 3_000 <= total(simulate_day(day, "UTC", seed), STEPS) <= 25_000


def test_the_readings_cover_the_users_local_day_minute_by_minute():
    readings = simulate_day(date(2026, 11, 24), "Asia/Tokyo", 1)
    times = sorted({seconds for _, seconds, _ in readings})

    assert datetime.fromtimestamp(times[0], UTC) == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert len(times) == 24 * 60
    assert all(seconds % 60 == 0 for seconds in times)


def test_a_day_with_a_clock_change_has_its_real_number_of_minutes():
    spring_forward = simulate_day(date(2026, 3, 29), "Europe/Paris", 1)
    assert len({seconds for metric, seconds, _ in spring_forward if metric == HEART_RATE}) == 23 * 60


def test_today_stops_at_the_last_complete_minute():
    until = datetime(2026, 11, 24, 9, 30, 20, tzinfo=UTC)
    readings = simulate_day(date(2026, 11, 24), "UTC", 5, until=until)

    assert max(seconds for _, seconds, _ in readings) == int(datetime(2026, 11, 24, 9, 29, tzinfo=UTC).timestamp())


def test_a_sleeping_night_is_calmer_than_the_day():
    readings = simulate_day(date(2026, 11, 24), "UTC", 3)
    night = [v for m, s, v in readings if m == HEART_RATE and datetime.fromtimestamp(s, UTC).hour < 4]
    steps_at_night = [v for m, s, v in readings if m == STEPS and datetime.fromtimestamp(s, UTC).hour < 4]

    assert max(night) < 90
    assert steps_at_night == []


def test_a_phone_counts_steps_and_distance_only_in_minutes_the_watch_saw_movement():
    watch = simulate_day(date(2026, 11, 24), "UTC", 4)
    phone = simulate_phone(watch, 9)
    watch_step_minutes = {seconds for metric, seconds, _ in watch if metric == STEPS}

    assert phone, "a phone carried on a weekday counts something"
    assert {metric for metric, _, _ in phone} == {STEPS, DISTANCE}
    assert {seconds for _, seconds, _ in phone} <= watch_step_minutes
    assert all(0 < value <= 1000 for metric, _, value in phone if metric == STEPS)
    assert simulate_phone(watch, 9) == phone


def test_a_phone_is_carried_on_most_walks_and_left_behind_for_some_of_the_pottering():
    carried = brisk = 0
    for seed in range(20):
        watch = simulate_day(date(2026, 11, 24), "UTC", seed)
        phone_minutes = {seconds for metric, seconds, _ in simulate_phone(watch, seed) if metric == STEPS}
        walking = {seconds for metric, seconds, value in watch if metric == STEPS and value >= 95}
        brisk += len(walking)
        carried += len(walking & phone_minutes)
        pottering = {seconds for metric, seconds, value in watch if metric == STEPS and value < 20}
        assert len(pottering & phone_minutes) < len(pottering)
    assert carried / brisk > 0.7


def test_a_users_steps_take_the_higher_device_in_each_minute_and_fall_on_local_days():
    tokyo = ZoneInfo("Asia/Tokyo")
    evening = int(datetime(2026, 11, 24, 14, 59, tzinfo=UTC).timestamp())  # 23:59 in Tokyo
    watch = [(STEPS, evening, 100.0), (STEPS, evening + 60, 80.0), (HEART_RATE, evening, 90.0)]
    phone = [(STEPS, evening, 120.0), (STEPS, evening + 60, 30.0), (DISTANCE, evening, 90.0)]

    assert merged_daily_totals([watch, phone], tokyo) == {date(2026, 11, 24): 120.0, date(2026, 11, 25): 80.0}
    assert merged_daily_totals([watch, phone], ZoneInfo("UTC")) == {date(2026, 11, 24): 200.0}
    assert merged_daily_totals([watch], tokyo, HEART_RATE) == {date(2026, 11, 24): 90.0}


def test_a_watch_and_a_phone_together_count_more_than_the_watch_alone_but_less_than_both_added():
    zone = ZoneInfo("UTC")
    watch = simulate_day(date(2026, 11, 24), zone, 2)
    phone = simulate_phone(watch, 3)
    (alone,) = merged_daily_totals([watch], zone).values()
    (merged,) = merged_daily_totals([watch, phone], zone).values()

    assert alone < merged < alone + total(phone, STEPS)


def test_a_slice_of_hours_keeps_the_local_hours_asked_for():
    paris = ZoneInfo("Europe/Paris")
    readings = simulate_day(date(2026, 11, 24), paris, 6)
    morning = within_hours(readings, paris, (7, 9))

    assert {datetime.fromtimestamp(seconds, paris).hour for _, seconds, _ in morning} == {7, 8}
    assert len({seconds for _, seconds, _ in morning}) == 120
    assert within_hours(readings, paris, (0, 24)) == readings


def test_each_user_and_day_gets_its_own_seed_and_the_same_one_every_run():
    day = date(2026, 11, 24)
    seeds = {
        day_seed(1, user, day + timedelta(days=d), device) for user in range(5) for d in range(5) for device in (0, 1)
    }

    assert len(seeds) == 50
    assert day_seed(1, 2, day) == day_seed(1, 2, day)


# --- the command line ---

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_day_before_2000_is_refused_as_the_server_would_refuse_its_readings():
    problem = days_problem(date(1900, 1, 1), 1, ZoneInfo("UTC"), NOW)
    assert problem and "1900-01-01 starts before 2000-01-01 00:00 UTC" in problem and "later --date" in problem


def test_the_first_of_several_days_and_a_zone_ahead_of_utc_count_for_the_earliest_day():
    assert "1999-12-30 (the first of 5 days)" in days_problem(date(2000, 1, 3), 5, ZoneInfo("UTC"), NOW)
    # Local midnight of 2000-01-01 at UTC+14 is 1999-12-31 10:00 UTC.
    assert days_problem(date(2000, 1, 1), 1, ZoneInfo("Pacific/Kiritimati"), NOW)
    assert days_problem(date(2000, 1, 1), 1, ZoneInfo("UTC"), NOW) is None


def test_a_day_after_today_in_the_users_zone_is_in_the_future():
    assert "in the future in UTC" in days_problem(date(2026, 11, 25), 1, ZoneInfo("UTC"), NOW)
    # Already the 25th in Kiritimati at noon UTC.
    assert days_problem(date(2026, 11, 25), 1, ZoneInfo("Pacific/Kiritimati"), NOW) is None


def test_counts_are_written_with_the_word_in_the_right_number():
    assert plural(1, "batch", "batches") == "1 batch"
    assert plural(2, "batch", "batches") == "2 batches"
    assert plural(0, "device") == "0 devices"
    assert plural(1_000, "user") == "1,000 users"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "abc"])
def test_an_option_that_takes_seconds_refuses_what_is_not_a_finite_positive_number(text):
    with pytest.raises(argparse.ArgumentTypeError, match="give seconds above 0"):
        number("seconds above 0", lambda value: value > 0)(text)


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "x"])
def test_an_option_that_counts_refuses_what_is_not_a_whole_number_in_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match="give 1 or more"):
        whole_number("1 or more", lambda value: value >= 1)(text)


def test_the_summary_of_one_device_speaks_of_one_device_and_one_user():
    plan = FleetPlan(devices=1)
    report = FleetReport(plan, [date(2026, 11, 24)], 1, [DeviceStats("watch-1", unacknowledged=1)], 1.0, 1.0)
    assert report.summary().startswith("1 device of 1 user synced 2026-11-24")
    assert report.failures == ["watch-1: 1 batch never acknowledged"]
