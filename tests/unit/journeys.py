"""Random journeys for the property tests of the placement rule: writes from two devices of a user who
keeps changing time zone and resending, and what each store should then hold.

The expectation is the rule itself, stated the simple way: a minute is counted on the local day it first
came with, whoever sends it again and from wherever, and each source's last value of it counts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from fittrack.core.domain.aggregation import summarize_sources
from fittrack.core.domain.metrics import MetricKind, PlacedReading, local_date_of
from fittrack.core.ports import MetricStore

Write = tuple[str, list[PlacedReading]]  # (source, readings)

# From the westmost to the eastmost offset: each moves some minutes to another local day.
ZONES = [ZoneInfo(name) for name in ("Etc/GMT+12", "America/New_York", "UTC", "Asia/Tokyo", "Pacific/Kiritimati")]
SOURCES = ("watch", "phone")
METRICS = (MetricKind.STEPS, MetricKind.HEART_RATE)
# Forty hours from 04:00 UTC on 9 June: the minutes fall on 8 to 11 June, depending on the time zone.
START = int(datetime(2026, 6, 9, 4, 0, tzinfo=UTC).timestamp()) // 60
SPAN = 40 * 60
DAYS = [date(2026, 6, 7) + timedelta(days=n) for n in range(6)]

values = st.integers(1, 100).map(float)


@st.composite
def fresh_write(draw) -> Write:
    zone, metric = draw(st.sampled_from(ZONES)), draw(st.sampled_from(METRICS))
    first = START + draw(st.integers(0, SPAN - 1))
    minutes = range(first, min(first + draw(st.integers(1, 40)), START + SPAN), draw(st.sampled_from((1, 1, 7))))
    readings = [PlacedReading(metric, minute, draw(values), local_date_of(minute, zone)) for minute in minutes]
    if draw(st.booleans()):
        # Some of them again in the same write, after a change of time zone mid-upload.
        later = draw(st.sampled_from(ZONES))
        again = draw(st.lists(st.sampled_from(readings), max_size=5))
        readings += [PlacedReading(metric, r.minute, draw(values), local_date_of(r.minute, later)) for r in again]
    return draw(st.sampled_from(SOURCES)), readings


@st.composite
def journeys(draw) -> list[Write]:
    """Up to eight writes; each after the first may resend minutes of an earlier one, by either source."""
    writes = [draw(fresh_write())]
    for _ in range(draw(st.integers(0, 7))):
        if draw(st.booleans()):
            writes.append(draw(fresh_write()))
            continue
        _, earlier = draw(st.sampled_from(writes))
        zone = draw(st.sampled_from(ZONES))
        resent = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=len(earlier)))
        readings = [PlacedReading(r.metric, r.minute, draw(values), local_date_of(r.minute, zone)) for r in resent]
        writes.append((draw(st.sampled_from(SOURCES)), readings))
    return writes


def travel(store: MetricStore, user_id: str, writes: list[Write]) -> list[set[tuple[MetricKind, date]]]:
    """Each write stored in turn; what each said it touched."""
    return [store.upsert_minutes(user_id, source, readings) for source, readings in writes]


def held(store: MetricStore, user_id: str) -> dict[tuple[MetricKind, date], dict[str, dict[int, float]]]:
    """Every source's minutes of each (metric, day) of the journey, leaving out empty days."""
    found = {(metric, day): store.minutes_of_day(user_id, metric, day) for metric in METRICS for day in DAYS}
    return {key: minutes for key, minutes in found.items() if minutes}


def day_totals(minutes: dict[tuple[MetricKind, date], dict[str, dict[int, float]]]) -> dict[tuple, float]:
    """Each day's figure as views show it: sources merged minute by minute, then summed (heart rate: averaged)."""
    return {
        (metric, day): summarize_sources(metric, day, by_source).value for (metric, day), by_source in minutes.items()
    }


def expected(writes: list[Write]) -> tuple[list[set], dict[tuple[MetricKind, date], dict[str, dict[int, float]]]]:
    """What each write touches and what the stores hold at the end, by the rule stated simply."""
    first_day: dict[tuple[MetricKind, int], date] = {}
    last_value: dict[tuple[str, MetricKind, int], float] = {}
    touched = []
    for source, readings in writes:
        days = set()
        for r in readings:
            day = first_day.setdefault((r.metric, r.minute), r.local_date)
            last_value[(source, r.metric, r.minute)] = r.value
            days.add((r.metric, day))
        touched.append(days)
    minutes: dict[tuple[MetricKind, date], dict[str, dict[int, float]]] = {}
    for (source, metric, minute), value in last_value.items():
        minutes.setdefault((metric, first_day[(metric, minute)]), {}).setdefault(source, {})[minute] = value
    return touched, minutes
