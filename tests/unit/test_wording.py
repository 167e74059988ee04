"""Numbers and instants in messages read as a person wrote them, never in exponent notation or seconds since 1970."""

from datetime import UTC, datetime

import pytest

from fittrack.core.domain.wording import instant, instant_of, number


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1_400_001, "1,400,001"),
        (1_400_001.0, "1,400,001"),
        (1_400_000.5, "1,400,000.5"),
        (0.1, "0.1"),
        (1e-7, "0.0000001"),
        (-2.25, "-2.25"),
        (float("nan"), "nan"),
        (1e16, "10,000,000,000,000,000"),
    ],
)
def test_a_number_is_plain_grouped_decimals_with_a_fraction_only_when_it_has_one(value, text):
    assert number(value) == text


def test_an_instant_reads_as_a_utc_date_time_to_the_minute_or_to_the_second_when_it_has_seconds():
    assert instant(datetime(1900, 1, 1, tzinfo=UTC)) == "1900-01-01T00:00Z"
    assert instant(datetime(2026, 6, 10, 9, 15, 42, tzinfo=UTC)) == "2026-06-10T09:15:42Z"
    assert instant(datetime(5, 3, 1, tzinfo=UTC)) == "0005-03-01T00:00Z"


def test_seconds_no_calendar_date_holds_have_no_instant_rather_than_an_error():
    assert instant_of(-2_208_988_800) == datetime(1900, 1, 1, tzinfo=UTC)
    assert instant_of(2**62) is None
    assert instant_of(-(10**12)) is None
