from datetime import UTC, date, datetime, timedelta

import pytest

from clients.simulator import ACTIVE_MINUTES, CALORIES, DISTANCE, HEART_RATE, STEPS, simulate_day

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
