"""How numbers and instants read in messages to people.

A message quotes a number the way the person typed it: "1,400,001", not
"1.4e+06", which rounds it to the limit it broke and hides why. An instant
reads as a date in UTC, not as seconds since 1970.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def number(value: float) -> str:
    """Plain decimal digits in groups of three, with a fraction only when there is one: 1,400,001; 12.5; 0.0001."""
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value.is_integer():
        return f"{int(value):,}"
    # repr gives the shortest digits that read back as the same float, so 0.1 stays 0.1; "f" never uses an exponent.
    return f"{Decimal(repr(value)):,f}"


def instant_of(seconds: int) -> datetime | None:
    """The UTC instant `seconds` after 1970, or None when no calendar date holds it (before year 1, after 9999)."""
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def instant(moment: datetime) -> str:
    """ISO 8601 in UTC to the minute, or to the second when it has seconds: 2026-06-10T09:15Z."""
    utc = moment.astimezone(UTC)
    # Written out rather than strftime, whose %Y does not pad years before 1000 on every platform.
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}"
    if utc.second or utc.microsecond:
        text += f":{utc.second:02d}"
    return text + "Z"
