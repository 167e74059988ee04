"""Merging sources minute by minute, and summing minutes into days and days into ranges."""

from datetime import date

import pytest

from fittrack.core.domain.aggregation import (
    DaySummary,
    SourceFigures,
    combine_sources,
    merge_sources,
    summarize_day,
    summarize_range,
    summarize_sources,
)
from fittrack.core.domain.metrics import MetricKind

STEPS = MetricKind.STEPS
HEART = MetricKind.HEART_RATE
DAY = date(2026, 6, 10)


@pytest.mark.parametrize(
    "by_source",
    [{"phone": {100: 80.0}, "watch": {100: 95.0}}, {"watch": {100: 95.0}, "phone": {100: 80.0}}],
    ids=["higher-last", "higher-first"],
)
def test_a_phone_and_a_watch_counting_the_same_minute_count_it_once_at_the_higher_value(by_source):
    assert merge_sources(STEPS, by_source) == {100: 95.0}


def test_minutes_only_one_source_saw_are_kept_as_they_are():
    merged = merge_sources(STEPS, {"phone": {100: 80.0, 101: 10.0}, "watch": {100: 95.0, 102: 7.0}})
    assert merged == {100: 95.0, 101: 10.0, 102: 7.0}


def test_a_minute_of_zero_from_one_source_does_not_hide_another_sources_steps():
    assert merge_sources(STEPS, {"phone": {100: 0.0}, "watch": {100: 30.0}}) == {100: 30.0}


def test_heart_rate_from_two_sources_on_the_same_minute_is_averaged():
    merged = merge_sources(HEART, {"chest-strap": {100: 120.0}, "watch": {100: 110.0}, "ring": {101: 90.0}})
    assert merged == {100: 115.0, 101: 90.0}


def test_a_single_source_is_taken_as_it_is():
    assert merge_sources(HEART, {"watch": {1: 60.0, 2: 70.0}}) == {1: 60.0, 2: 70.0}


def test_walking_with_phone_and_watch_does_not_double_the_day_total():
    merged = merge_sources(STEPS, {"phone": {1: 100.0, 2: 100.0}, "watch": {1: 100.0, 2: 100.0}})
    assert summarize_day(STEPS, DAY, merged).value == 200.0


def test_a_day_of_steps_is_the_sum_of_its_minutes():
    summary = summarize_day(STEPS, DAY, {1: 100.0, 2: 50.0, 3: 25.0})
    assert summary == DaySummary(DAY, 175.0, 25.0, 100.0, 3)


def test_a_day_of_heart_rate_is_the_mean_of_its_minutes_with_its_lowest_and_highest_minute():
    summary = summarize_day(HEART, DAY, {1: 60.0, 2: 90.0, 3: 120.0})
    assert summary == DaySummary(DAY, 90.0, 60.0, 120.0, 3)


def test_a_day_without_minutes_has_no_data():
    summary = summarize_day(STEPS, DAY, {})
    assert summary.value == 0.0
    assert not summary.has_data


def test_a_range_has_one_entry_per_day_and_fills_missing_days_with_zero():
    stored = [DaySummary(date(2026, 6, 2), 1000.0, 1.0, 100.0, 50)]
    summary = summarize_range(STEPS, date(2026, 6, 1), date(2026, 6, 3), stored)
    assert [d.day for d in summary.days] == [date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)]
    assert [d.value for d in summary.days] == [0.0, 1000.0, 0.0]
    assert summary.days_with_data == 1


def test_the_average_of_a_range_counts_only_days_with_data():
    stored = [
        DaySummary(date(2026, 6, 1), 4000.0, 1.0, 100.0, 60),
        DaySummary(date(2026, 6, 3), 8000.0, 1.0, 120.0, 90),
    ]
    summary = summarize_range(STEPS, date(2026, 6, 1), date(2026, 6, 7), stored)
    assert summary.total == 12000.0
    assert summary.average == 6000.0
    assert summary.days_with_data == 2


def test_the_heart_rate_average_of_a_range_is_weighted_by_minutes_measured():
    stored = [
        DaySummary(date(2026, 6, 1), 60.0, 50.0, 80.0, 300),  # a long, calm day
        DaySummary(date(2026, 6, 2), 150.0, 140.0, 170.0, 100),  # a short run
    ]
    summary = summarize_range(HEART, date(2026, 6, 1), date(2026, 6, 2), stored)
    assert summary.average == pytest.approx((60 * 300 + 150 * 100) / 400)  # 82.5, not 105
    assert summary.total == 0.0


def test_the_heart_rate_range_reports_its_lowest_and_highest_minute():
    stored = [
        DaySummary(date(2026, 6, 1), 60.0, 48.0, 80.0, 300),
        DaySummary(date(2026, 6, 2), 150.0, 140.0, 181.0, 100),
    ]
    summary = summarize_range(HEART, date(2026, 6, 1), date(2026, 6, 2), stored)
    assert (summary.min, summary.max) == (48.0, 181.0)


def test_a_range_without_any_data_is_all_zero():
    summary = summarize_range(HEART, date(2026, 6, 1), date(2026, 6, 7), [])
    assert (summary.total, summary.average, summary.min, summary.max, summary.days_with_data) == (0, 0, 0, 0, 0)
    assert len(summary.days) == 7


def test_stored_days_outside_the_range_do_not_leak_into_it():
    stored = [DaySummary(date(2026, 5, 31), 9999.0, 1.0, 100.0, 10), DaySummary(date(2026, 6, 1), 10.0, 10, 10, 1)]
    summary = summarize_range(STEPS, date(2026, 6, 1), date(2026, 6, 1), stored)
    assert summary.total == 10.0


def test_each_source_keeps_its_own_figures_beside_the_merged_day():
    day = date(2026, 3, 1)
    summary = summarize_sources(MetricKind.STEPS, day, {"watch": {1: 100, 2: 100}, "phone": {1: 120}})
    assert (summary.value, summary.minutes) == (220, 2)
    assert summary.sources == (SourceFigures("phone", 120, 1), SourceFigures("watch", 200, 2))


def test_a_sources_heart_rate_over_a_range_is_the_mean_of_its_minutes():
    days = [
        DaySummary(date(2026, 3, 1), 0, sources=(SourceFigures("watch", 60, 1),)),
        DaySummary(date(2026, 3, 2), 0, sources=(SourceFigures("watch", 90, 2), SourceFigures("strap", 70, 4))),
    ]
    strap = SourceFigures("strap", 70, 4)
    assert combine_sources(MetricKind.HEART_RATE, days) == (strap, SourceFigures("watch", 80, 3))
    assert combine_sources(MetricKind.STEPS, days) == (strap, SourceFigures("watch", 150, 3))
