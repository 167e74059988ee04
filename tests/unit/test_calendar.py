"""Ranges users ask for, weeks, months, and how much of a period has passed."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.domain.calendar import (
    RangePreset,
    check_range,
    elapsed_fraction,
    local_today,
    make_date,
    month_of,
    resolve_view_range,
    week_of,
    zone_named,
)
from fittrack.core.domain.errors import InvalidArgument

TODAY = date(2026, 6, 10)  # a Wednesday
PARIS = ZoneInfo("Europe/Paris")


def test_the_today_preset_covers_only_today():
    assert resolve_view_range(RangePreset.TODAY, None, TODAY) == (TODAY, TODAY)


def test_the_last_7_days_preset_ends_today_and_covers_seven_days():
    assert resolve_view_range(RangePreset.LAST_7_DAYS, None, TODAY) == (date(2026, 6, 4), TODAY)


def test_the_last_30_days_preset_ends_today_and_covers_thirty_days():
    assert resolve_view_range(RangePreset.LAST_30_DAYS, None, TODAY) == (date(2026, 5, 12), TODAY)


def test_an_unknown_preset_is_rejected():
    with pytest.raises(InvalidArgument, match="unknown range preset 9"):
        resolve_view_range(9, None, TODAY)


def test_a_view_without_preset_or_dates_is_rejected():
    with pytest.raises(InvalidArgument, match="choose a range"):
        resolve_view_range(None, None, TODAY)


def test_an_explicit_range_of_31_days_is_allowed():
    assert resolve_view_range(None, (date(2026, 1, 1), date(2026, 1, 31)), TODAY) == (
        date(2026, 1, 1),
        date(2026, 1, 31),
    )


def test_an_explicit_range_over_31_days_is_rejected():
    with pytest.raises(InvalidArgument, match="covers 32 days; at most 31"):
        resolve_view_range(None, (date(2026, 1, 1), date(2026, 2, 1)), TODAY)


def test_an_explicit_range_wins_over_a_preset():
    explicit = (date(2026, 1, 5), date(2026, 1, 6))
    assert resolve_view_range(RangePreset.TODAY, explicit, TODAY) == explicit


def test_a_range_that_ends_before_it_starts_is_rejected():
    with pytest.raises(InvalidArgument, match="ends .* before it starts"):
        check_range(date(2026, 6, 2), date(2026, 6, 1), 31)


def test_a_single_day_range_is_allowed():
    check_range(TODAY, TODAY, 1)


@pytest.mark.parametrize("day", [date(2026, 6, 8) + timedelta(days=n) for n in range(7)])
def test_every_day_of_a_week_belongs_to_the_week_from_monday_to_sunday(day):
    assert week_of(day) == (date(2026, 6, 8), date(2026, 6, 14))


def test_a_week_can_span_the_turn_of_the_year():
    assert week_of(date(2026, 1, 1)) == (date(2025, 12, 29), date(2026, 1, 4))


def test_february_of_a_leap_year_has_29_days():
    assert month_of(date(2024, 2, 10)) == (date(2024, 2, 1), date(2024, 2, 29))


def test_february_of_a_common_year_has_28_days():
    assert month_of(date(2026, 2, 10)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_december_ends_on_the_31st():
    assert month_of(date(2026, 12, 31)) == (date(2026, 12, 1), date(2026, 12, 31))


def test_nothing_of_a_period_has_passed_before_it_starts():
    before = datetime(2026, 6, 9, 21, 59, tzinfo=UTC)  # 23:59 in Paris, the day before
    assert elapsed_fraction(TODAY, TODAY, PARIS, before) == 0.0


def test_all_of_a_period_has_passed_after_it_ends():
    after = datetime(2026, 6, 10, 22, 0, tzinfo=UTC)  # midnight in Paris, the day after
    assert elapsed_fraction(TODAY, TODAY, PARIS, after) == 1.0


def test_half_of_a_day_has_passed_at_local_noon():
    noon_in_paris = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
    assert elapsed_fraction(TODAY, TODAY, PARIS, noon_in_paris) == pytest.approx(0.5)


def test_half_of_a_week_has_passed_at_thursday_noon():
    thursday_noon_in_paris = datetime(2026, 6, 11, 10, 0, tzinfo=UTC)
    assert elapsed_fraction(date(2026, 6, 8), date(2026, 6, 14), PARIS, thursday_noon_in_paris) == pytest.approx(0.5)


def test_the_fraction_of_the_day_clocks_go_back_never_exceeds_one():
    half_past_eleven_in_paris = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # 24.5 of its 25 hours have passed
    fraction = elapsed_fraction(date(2026, 10, 25), date(2026, 10, 25), PARIS, half_past_eleven_in_paris)
    assert fraction == pytest.approx(24.5 / 25)


def test_the_fraction_of_the_day_clocks_go_forward_reaches_nearly_one_before_midnight():
    half_past_eleven_in_paris = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # 22.5 of its 23 hours have passed
    fraction = elapsed_fraction(date(2026, 3, 29), date(2026, 3, 29), PARIS, half_past_eleven_in_paris)
    assert fraction == pytest.approx(22.5 / 23)


def test_today_is_the_local_date_of_the_user():
    late_evening_utc = datetime(2026, 6, 10, 23, 30, tzinfo=UTC)
    assert local_today(PARIS, late_evening_utc) == date(2026, 6, 11)
    assert local_today(ZoneInfo("America/New_York"), late_evening_utc) == date(2026, 6, 10)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "/etc/localtime", "Europe/../UTC"])
def test_a_name_that_is_not_an_iana_time_zone_is_rejected_with_an_example(name):
    with pytest.raises(InvalidArgument, match="such as 'Europe/Paris'"):
        zone_named(name)


def test_a_real_time_zone_name_is_accepted():
    assert zone_named("America/New_York") == ZoneInfo("America/New_York")


def test_an_impossible_calendar_date_is_rejected_with_what_it_was_for():
    with pytest.raises(InvalidArgument, match="anchor 2026-02-30 is not a calendar date"):
        make_date(2026, 2, 30, "anchor")
