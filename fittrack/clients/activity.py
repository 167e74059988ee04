"""Simulated activity: realistic days of per-minute readings from a wrist-worn tracker, and a phone alongside.

`simulate_day` is what the simulator's fleet, `fittrack simulate day` and the tests sync; the figures are
typical for an adult, and a seed makes a day repeatable.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from fittrack.clients.sync import (
    SimulatedReading,
)
from fittrack.generated.v1 import common_pb2

STEPS = common_pb2.METRIC_KIND_STEPS
CALORIES = common_pb2.METRIC_KIND_CALORIES_BURNED
DISTANCE = common_pb2.METRIC_KIND_DISTANCE
ACTIVE_MINUTES = common_pb2.METRIC_KIND_ACTIVE_MINUTES
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Pace:
    """How a minute is spent; the figures are typical for an adult."""

    name: str
    steps: tuple[int, int]
    stride_m: float
    heart_rate_above_rest: float
    kcal_per_step: float
    active: bool


SLEEP = Pace("sleep", (0, 0), 0.0, -8, 0.0, False)
# Mostly still; the odd minute of a few steps is drawn in simulate_day.
SEDENTARY = Pace("sedentary", (0, 0), 0.6, 6, 0.035, False)
# Pottering about the house or office: a few dozen steps, not exercise.
LIGHT = Pace("light", (15, 70), 0.6, 20, 0.035, False)
WALK = Pace("walk", (95, 125), 0.75, 42, 0.045, True)
RUN = Pace("run", (150, 180), 1.1, 95, 0.07, True)


def simulate_day(day: date, zone: ZoneInfo | str, seed: int, until: datetime | None = None) -> list[SimulatedReading]:
    """One local day of a wrist-worn tracker, in time order.

    Heart rate and calories come every minute (the watch is worn day and
    night); steps and distance only in minutes with movement and active
    minutes only in minutes of brisk activity, as real trackers report them.
    With `until`, minutes that have not fully passed by then are left out.
    The same day, zone and seed always give the same readings.
    """
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    rng = random.Random(seed)
    plan = _plan_day(day, rng)
    resting_heart_rate = rng.uniform(52, 72)
    basal_kcal_per_minute = rng.uniform(0.95, 1.3)
    stride_scale = rng.uniform(0.9, 1.1)

    # Walking the UTC minutes between two local midnights gets 23 or 25 hour days right.
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    cutoff = int(until.timestamp()) if until is not None else None
    heart_rate = resting_heart_rate
    readings: list[SimulatedReading] = []
    moment = start
    while moment < end:
        seconds = int(moment.timestamp())
        if cutoff is not None and seconds + 60 > cutoff:
            break
        local = moment.astimezone(zone)
        pace = plan[local.hour * 60 + local.minute]
        # A heart does not jump to its new rate: ease towards it, with some noise.
        target = resting_heart_rate + pace.heart_rate_above_rest + rng.gauss(0, 3)
        heart_rate += 0.3 * (target - heart_rate)
        steps = rng.randint(*pace.steps)
        if pace is SEDENTARY and rng.random() < 0.08:
            steps = rng.randint(1, 12)  # getting up for a moment
        calories = basal_kcal_per_minute * (0.9 if pace is SLEEP else 1.0) + steps * pace.kcal_per_step
        readings.append((HEART_RATE, seconds, float(round(min(max(heart_rate, 35), 200)))))
        readings.append((CALORIES, seconds, round(calories, 2)))
        if steps:
            stride = pace.stride_m * stride_scale
            readings.append((STEPS, seconds, float(steps)))
            readings.append((DISTANCE, seconds, round(steps * stride, 1)))
        if pace.active:
            readings.append((ACTIVE_MINUTES, seconds, 1.0))
        moment += timedelta(minutes=1)
    return readings


def _plan_day(day: date, rng: random.Random) -> list[Pace]:
    """What the person does in each minute of their local day (index: minutes since midnight)."""
    wake = rng.randint(6 * 60, 7 * 60 + 45)
    bed = rng.randint(22 * 60, 23 * 60 + 45)
    plan = [SLEEP] * wake + [SEDENTARY] * (bed - wake) + [SLEEP] * (MINUTES_PER_DAY - bed)

    def spend(start: int, minutes: int, pace: Pace) -> None:
        for minute in range(max(start, wake), min(start + minutes, bed)):
            plan[minute] = pace

    liveliness = rng.uniform(0.7, 1.2)
    for _ in range(int(rng.randint(20, 35) * liveliness)):
        spend(rng.randint(wake, bed), rng.randint(2, 8), LIGHT)
    if day.weekday() < 5:
        spend(wake + rng.randint(40, 70), rng.randint(10, 25), WALK)
        spend(rng.randint(17 * 60, 18 * 60 + 30), rng.randint(10, 25), WALK)
        if rng.random() < 0.7:
            spend(rng.randint(12 * 60, 13 * 60 + 30), rng.randint(5, 30), WALK)
    elif rng.random() < 0.8:
        spend(rng.randint(10 * 60, 16 * 60), rng.randint(30, 90), WALK)
    if rng.random() < 0.35:
        start = wake + rng.randint(5, 20) if rng.random() < 0.5 else rng.randint(18 * 60 + 30, 20 * 60)
        spend(start, rng.randint(20, 50), RUN)
    return plan


def simulate_phone(watch: Sequence[SimulatedReading], seed: int) -> list[SimulatedReading]:
    """What a phone carried alongside the watch counts: steps and distance, in the minutes it is in a pocket.

    It goes along on most walks and runs and on some of the pottering about, and
    counts a little differently from the wrist, sometimes more: the day's merged
    steps (the higher device per minute) are then more than the watch's alone.
    """
    rng = random.Random(seed)
    stride = rng.uniform(0.68, 0.78)
    steps = [(seconds, value) for metric, seconds, value in watch if metric == STEPS]
    readings: list[SimulatedReading] = []
    # A bout is a run of consecutive minutes with steps; the phone is carried for a whole bout or not at all.
    for _, bout in groupby(enumerate(steps), key=lambda item: item[1][0] // 60 - item[0]):
        minutes = [minute for _, minute in bout]
        brisk = sum(value for _, value in minutes) / len(minutes) >= 80
        if rng.random() >= (0.9 if brisk else 0.35):
            continue
        for seconds, value in minutes:
            counted = min(1000, round(value * rng.uniform(0.85, 1.08)))
            if counted:
                readings.append((STEPS, seconds, float(counted)))
                readings.append((DISTANCE, seconds, round(counted * stride, 1)))
    return readings


def within_hours(
    readings: Iterable[SimulatedReading], zone: ZoneInfo, hours: tuple[int, int]
) -> list[SimulatedReading]:
    """The readings whose local hour is in [first, last): a slice of the day, for short runs."""
    first, last = hours
    return [r for r in readings if first <= datetime.fromtimestamp(r[1], zone).hour < last]


def merged_daily_totals(
    devices: Iterable[Sequence[SimulatedReading]], zone: ZoneInfo, metric: int = STEPS
) -> dict[date, float]:
    """A user's daily totals as the server merges them: per minute the highest value of any device, summed per day."""
    per_minute: dict[int, float] = {}
    for readings in devices:
        for kind, seconds, value in readings:
            if kind == metric:
                per_minute[seconds] = max(value, per_minute.get(seconds, 0.0))
    totals: defaultdict[date, float] = defaultdict(float)
    for seconds, value in per_minute.items():
        totals[datetime.fromtimestamp(seconds, zone).date()] += value
    return dict(totals)


def day_seed(base: int, user: int, day: date, device: int = 0) -> int:
    return zlib.crc32(f"{base}/{user}/{day.isoformat()}/{device}".encode())
