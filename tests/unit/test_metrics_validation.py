"""The rules a device reading must obey before it is accepted, and the local day it lands on."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.domain.errors import InvalidArgument, ResourceExhausted
from fittrack.core.domain.metrics import (
    BatchLimits,
    MetricKind,
    Reading,
    batch_label,
    check_and_place,
    local_date_of,
    place,
    source_of,
    validate_batch_size,
    validate_device_id,
    validate_reading,
)

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
AN_HOUR_AGO = int((NOW - timedelta(hours=1)).timestamp())


def check(metric: MetricKind | int, value: float, seconds: int = AN_HOUR_AGO, position: int = 0) -> Reading:
    return validate_reading(int(metric), seconds, value, NOW, position)


@pytest.mark.parametrize(
    ("metric", "highest"),
    [
        (MetricKind.STEPS, 1000),
        (MetricKind.CALORIES_BURNED, 100),
        (MetricKind.DISTANCE, 1500),
        (MetricKind.ACTIVE_MINUTES, 1),
        (MetricKind.HEART_RATE, 250),
    ],
)
def test_each_metric_accepts_its_per_minute_ceiling(metric, highest):
    assert check(metric, highest).value == highest


@pytest.mark.parametrize(
    ("metric", "too_much"),
    [
        (MetricKind.STEPS, 1001),
        (MetricKind.CALORIES_BURNED, 100.1),
        (MetricKind.DISTANCE, 1500.5),
        (MetricKind.ACTIVE_MINUTES, 1.01),
        (MetricKind.HEART_RATE, 250.1),
    ],
)
def test_a_value_just_above_the_per_minute_ceiling_is_rejected(metric, too_much):
    with pytest.raises(InvalidArgument, match="impossible"):
        check(metric, too_much)


@pytest.mark.parametrize("metric", [MetricKind.STEPS, MetricKind.CALORIES_BURNED, MetricKind.DISTANCE])
def test_a_minute_of_zero_activity_is_accepted(metric):
    assert check(metric, 0).value == 0


def test_a_heart_rate_of_20_bpm_is_accepted():
    assert check(MetricKind.HEART_RATE, 20).value == 20


def test_a_heart_rate_just_below_20_bpm_is_rejected():
    with pytest.raises(InvalidArgument, match="expected 20 to 250"):
        check(MetricKind.HEART_RATE, 19.9)


def test_a_heart_rate_of_zero_is_rejected_as_impossible():
    with pytest.raises(InvalidArgument, match="impossible for heart rate"):
        check(MetricKind.HEART_RATE, 0)


@pytest.mark.parametrize("metric", list(MetricKind))
def test_a_negative_value_is_rejected_for_every_metric(metric):
    with pytest.raises(InvalidArgument, match="cannot be negative"):
        check(metric, -1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_a_finite_number_is_rejected(value):
    with pytest.raises(InvalidArgument, match="finite number"):
        check(MetricKind.STEPS, value)


@pytest.mark.parametrize("kind", [0, 6, -1])
def test_an_unknown_metric_kind_is_rejected_and_the_valid_kinds_are_listed(kind):
    with pytest.raises(InvalidArgument, match=f"unknown metric kind {kind}") as error:
        check(kind, 10)
    assert "STEPS (1)" in str(error.value) and "HEART_RATE (5)" in str(error.value)


def test_a_reading_without_a_time_is_rejected():
    with pytest.raises(InvalidArgument, match="time is missing"):
        check(MetricKind.STEPS, 10, seconds=0)


def test_a_reading_more_than_a_day_in_the_future_is_rejected():
    seconds = int((NOW + timedelta(hours=24, seconds=1)).timestamp())
    with pytest.raises(InvalidArgument, match="more than 24 hours in the future"):
        check(MetricKind.STEPS, 10, seconds=seconds)


def test_a_reading_exactly_a_day_in_the_future_is_accepted():
    seconds = int((NOW + timedelta(hours=24)).timestamp())
    assert check(MetricKind.STEPS, 10, seconds=seconds).minute == seconds // 60


def test_a_reading_from_before_2000_is_rejected_as_a_clock_error():
    seconds = int(datetime(1999, 12, 31, 23, 59, tzinfo=UTC).timestamp())
    with pytest.raises(InvalidArgument, match="before 2000-01-01"):
        check(MetricKind.STEPS, 10, seconds=seconds)


def test_a_reading_from_1900_is_rejected_saying_its_date_and_the_earliest_a_reading_may_have():
    seconds = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
    with pytest.raises(InvalidArgument) as refused:
        check(MetricKind.STEPS, 10, seconds=seconds)
    assert str(refused.value) == (
        "reading 1: 1900-01-01T00:00Z is before 2000-01-01, the earliest time a reading may have; "
        "check the device clock"
    )


def test_a_reading_in_the_future_is_rejected_saying_its_date_and_the_servers():
    seconds = int(datetime(2026, 6, 12, 8, 30, 15, tzinfo=UTC).timestamp())
    with pytest.raises(InvalidArgument) as refused:
        check(MetricKind.STEPS, 10, seconds=seconds)
    assert str(refused.value) == (
        "reading 1: 2026-06-12T08:30:15Z is more than 24 hours in the future (the server's time is "
        "2026-06-10T12:00Z); check the device clock"
    )


@pytest.mark.parametrize(
    ("seconds", "side"),
    [(10**12, "after the year 9999"), (2**62, "after the year 9999"), (-(10**12), "before the year 1")],
)
def test_a_time_beyond_any_calendar_is_rejected_as_out_of_range(seconds, side):
    with pytest.raises(InvalidArgument, match=f"^reading 1: time {seconds} s since 1970 is out of range .{side}."):
        check(MetricKind.STEPS, 10, seconds=seconds)


def test_seconds_inside_a_minute_are_normalised_to_the_start_of_the_minute():
    start = int(datetime(2026, 6, 10, 9, 15, tzinfo=UTC).timestamp())
    assert check(MetricKind.STEPS, 10, seconds=start + 59).minute == start // 60
    assert check(MetricKind.STEPS, 10, seconds=start).minute == start // 60


def test_an_error_message_names_the_position_of_the_bad_reading_counted_from_one():
    with pytest.raises(InvalidArgument, match=r"^reading 8: 5,000 steps is impossible for steps in one minute; "):
        check(MetricKind.STEPS, 5000, position=7)


def test_an_accepted_reading_keeps_its_kind_and_value():
    reading = check(MetricKind.DISTANCE, 12.5)
    assert reading.metric is MetricKind.DISTANCE
    assert reading.value == 12.5


def test_an_empty_batch_is_rejected():
    with pytest.raises(InvalidArgument, match="at least one reading"):
        validate_batch_size(0, BatchLimits(1000))


def test_a_batch_at_the_limit_is_accepted():
    validate_batch_size(1000, BatchLimits(1000))


def test_a_batch_over_the_limit_is_refused_and_the_client_is_told_to_split_it():
    with pytest.raises(ResourceExhausted, match="1,001 readings; at most 1,000, so split it"):
        validate_batch_size(1001, BatchLimits(1000))


def test_a_device_id_of_64_characters_is_accepted():
    validate_device_id("d" * 64)


def test_a_device_id_longer_than_64_characters_is_rejected():
    with pytest.raises(InvalidArgument, match="65 characters long; at most 64"):
        validate_device_id("d" * 65)


def test_a_device_id_with_control_characters_is_rejected():
    with pytest.raises(InvalidArgument, match="printable"):
        validate_device_id("watch\n1")


def test_readings_without_a_device_are_stored_as_manual_entries():
    assert source_of("") == "manual"
    assert source_of("watch-1") == "watch-1"


# --- placing readings on the user's local day ---------------------------------

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
HALF_PAST_ELEVEN_UTC = int(datetime(2026, 6, 10, 23, 30, tzinfo=UTC).timestamp()) // 60


def test_a_reading_at_half_past_eleven_utc_lands_on_the_next_day_in_paris():
    assert local_date_of(HALF_PAST_ELEVEN_UTC, PARIS) == date(2026, 6, 11)


def test_a_reading_at_half_past_eleven_utc_lands_on_the_same_day_in_new_york():
    assert local_date_of(HALF_PAST_ELEVEN_UTC, NEW_YORK) == date(2026, 6, 10)


def test_placing_pins_each_reading_to_its_local_day_and_keeps_its_value():
    readings = [Reading(MetricKind.STEPS, HALF_PAST_ELEVEN_UTC, 42.0)]
    (placed,) = place(readings, PARIS)
    assert (placed.metric, placed.minute, placed.value, placed.local_date) == (
        MetricKind.STEPS,
        HALF_PAST_ELEVEN_UTC,
        42.0,
        date(2026, 6, 11),
    )


def minutes_on(day: date, zone: ZoneInfo) -> int:
    """How many UTC minutes of the surrounding days are placed on `day`."""
    first = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) // 60 - 24 * 60
    return sum(1 for minute in range(first, first + 3 * 24 * 60) if local_date_of(minute, zone) == day)


def test_the_day_paris_moves_its_clocks_forward_has_23_hours_of_minutes():
    assert minutes_on(date(2026, 3, 29), PARIS) == 23 * 60


def test_the_day_paris_moves_its_clocks_back_has_25_hours_of_minutes():
    assert minutes_on(date(2026, 10, 25), PARIS) == 25 * 60


def test_an_ordinary_day_has_24_hours_of_minutes():
    assert minutes_on(date(2026, 6, 10), PARIS) == 24 * 60


# --- the fast path used for whole batches ---------------------------------------------


def test_checking_a_batch_at_once_places_readings_as_one_by_one_validation_does():
    zone = ZoneInfo("Europe/Paris")
    now = datetime(2026, 10, 25, 12, tzinfo=UTC)
    # Spans the end of summer time in Paris (01:00 UTC on 25 October), so the offset changes mid-batch.
    start = int(datetime(2026, 10, 24, 20, tzinfo=UTC).timestamp())
    raw = [(1, start + 60 * i, float(i % 90)) for i in range(0, 1000, 7)]
    expected = place([validate_reading(m, s, v, now, i) for i, (m, s, v) in enumerate(raw)], zone)
    assert check_and_place(raw, now, zone) == expected
    same_offset = raw[:20]
    assert check_and_place(same_offset, now, zone) == expected[:20]


@pytest.mark.parametrize(
    "bad",
    [(1, 1_700_000_000, float("nan")), (5, 1_700_000_000, 19.0), (9, 1_700_000_000, 1.0), (1, 0, 1.0), (1, 900, -1.0)],
)
def test_a_batch_with_one_bad_reading_fails_with_that_readings_own_message(bad):
    now = datetime(2026, 10, 25, 12, tzinfo=UTC)
    raw = [(1, 1_700_000_000, 5.0), bad]
    with pytest.raises(InvalidArgument) as fast:
        check_and_place(raw, now, ZoneInfo("UTC"))
    with pytest.raises(InvalidArgument) as slow:
        validate_reading(*bad, now, 1, 2)
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize(
    ("device_id", "sequence", "in_upload", "label"),
    [
        ("watch-1", 7, None, "batch from device watch-1, sequence 7"),
        ("watch-1", 7, 3, "batch from device watch-1, sequence 7"),
        ("watch-1", 0, 3, "batch 3 of the upload (from device watch-1)"),
        ("", 5, None, "batch of manual entries, sequence 5"),
        ("", 0, 2, "batch 2 of the upload (manual entries)"),
        ("w" * 65, 0, 1, "batch 1 of the upload"),
    ],
)
def test_a_batch_is_named_by_its_device_and_sequence_and_by_its_place_in_the_upload_only_without_one(
    device_id, sequence, in_upload, label
):
    assert batch_label(device_id, sequence, in_upload) == label
