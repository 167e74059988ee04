"""The words the CLI uses and accepts: metric names, periods, dates, amounts.

One vocabulary everywhere: metrics are `steps`, `calories`, `distance`, `active_minutes` and `heart_rate`,
the names the report CSV uses for its columns too. What a person would type instead (`heart-rate`,
`Active Minutes`, `calories_kcal`, `HEART_RATE`) is accepted and read as the same metric.
"""

from __future__ import annotations

import argparse
import enum
import math
from dataclasses import dataclass
from datetime import date, timedelta

from google.type.date_pb2 import Date

from fittrack.core.domain.metrics import MetricKind
from fittrack.generated.v1 import account_pb2, common_pb2


class Metric(enum.Enum):
    """A metric as the CLI names it and sends it: the domain's kind, whose facts (name, units, per-minute limits,
    goal ceiling) the CLI reads so that it checks what the server checks and names a mistake as it was typed,
    and its number on the wire."""

    STEPS = MetricKind.STEPS, common_pb2.METRIC_KIND_STEPS
    CALORIES = MetricKind.CALORIES_BURNED, common_pb2.METRIC_KIND_CALORIES_BURNED
    DISTANCE = MetricKind.DISTANCE, common_pb2.METRIC_KIND_DISTANCE
    ACTIVE_MINUTES = MetricKind.ACTIVE_MINUTES, common_pb2.METRIC_KIND_ACTIVE_MINUTES
    HEART_RATE = MetricKind.HEART_RATE, common_pb2.METRIC_KIND_HEART_RATE

    def __init__(self, domain: MetricKind, kind: int) -> None:
        self.domain = domain
        self.kind = kind
        self.key = domain.key
        self.unit = domain.shown_unit  # the unit people read amounts in: km for distance
        self.stored_unit = domain.unit
        self.decimals = domain.decimals
        self.per_minute = domain.per_minute  # in the stored unit
        self.daily_goal_ceiling = domain.daily_goal_ceiling  # in the stored unit; None: no goals

    @property
    def averaged(self) -> bool:
        """Heart rate is averaged over a day; the others are summed."""
        return not self.domain.is_cumulative

    @property
    def goal_allowed(self) -> bool:
        return self.domain.takes_goals

    def goal_ceiling(self, period: str) -> float:
        """The largest target a `daily` or `weekly` goal may have, in stored units."""
        return (self.daily_goal_ceiling or 0) * (7 if period == "weekly" else 1)

    def shown(self, stored: float) -> float:
        """A stored amount in the unit people read it in."""
        return self.domain.shown(stored)

    def amount(self, stored: float, unit: bool = True) -> str:
        """12,345 steps; 8.42 km; 35 km; 2,295 kcal: whole where fractions mean nothing to a person."""
        text = f"{self.shown(stored):,.{self.decimals}f}"
        if self.decimals:
            text = text.rstrip("0").rstrip(".")
        return f"{text} {self.unit}" if unit else text

    @property
    def heading(self) -> str:
        """`distance (km)`; just `steps` where the unit is the name."""
        return self.key if self.unit == self.key else f"{self.key} ({self.unit})"

    @classmethod
    def of_kind(cls, kind: int) -> Metric | None:
        return next((metric for metric in cls if metric.kind == kind), None)

    @classmethod
    def parse(cls, text: str) -> Metric:
        metric = _ALIASES.get(_normalised(text))
        if metric is None:
            raise argparse.ArgumentTypeError(f"unknown metric {text!r}; use one of {', '.join(m.key for m in cls)}")
        return metric

    @classmethod
    def parse_goal(cls, text: str) -> Metric:
        metric = cls.parse(text)
        if not metric.goal_allowed:
            names = ", ".join(m.key for m in cls if m.goal_allowed)
            raise argparse.ArgumentTypeError(f"goals are for {names}; {metric.domain.label} has no target")
        return metric


def _normalised(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").replace("_", " ").split())


_ALIASES = {metric.key: metric for metric in Metric} | {
    "calories_burned": Metric.CALORIES,
    "calories_kcal": Metric.CALORIES,
    "kcal": Metric.CALORIES,
    "distance_m": Metric.DISTANCE,
    "distance_km": Metric.DISTANCE,
    "active_min": Metric.ACTIVE_MINUTES,
    "heart_rate_bpm": Metric.HEART_RATE,
    "heartrate": Metric.HEART_RATE,
    "hr": Metric.HEART_RATE,
}

PERIODS = {"daily": common_pb2.GOAL_PERIOD_DAILY, "weekly": common_pb2.GOAL_PERIOD_WEEKLY}
PERIOD_NAMES = {kind: name for name, kind in PERIODS.items()}
SEXES = {"female": account_pb2.SEX_FEMALE, "male": account_pb2.SEX_MALE, "other": account_pb2.SEX_OTHER}
SEX_NAMES = {kind: name for name, kind in SEXES.items()}

# The enums the CLI has its own words for, the ones its options take (`--metric heart_rate`, `--period daily`,
# `--sex female`): --json says those words too, not the wire's names (METRIC_KIND_HEART_RATE).
ENUM_WORDS = {
    common_pb2.MetricKind.DESCRIPTOR.full_name: {common_pb2.MetricKind.Name(m.kind): m.key for m in Metric},
    common_pb2.GoalPeriod.DESCRIPTOR.full_name: {common_pb2.GoalPeriod.Name(k): n for n, k in PERIODS.items()},
    account_pb2.Sex.DESCRIPTOR.full_name: {account_pb2.Sex.Name(k): n for n, k in SEXES.items()},
}


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 batch`, `2 batches`, `1,000 readings`."""
    word = singular if count == 1 else plural_form or _plural(singular)
    return f"{count:,} {word}"


def _plural(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def a_or_an(word: str) -> str:
    """`a csv`, `an xlsx`, `an exe`: a word without vowels (xlsx, svg, html) is read letter by letter."""
    lowered = word.lower()
    if any(vowel in lowered for vowel in "aeiou"):
        vowel_sound = lowered[:1] in ("a", "e", "i", "o", "u")
    else:
        vowel_sound = lowered[:1] in ("a", "e", "f", "h", "i", "l", "m", "n", "o", "r", "s", "x")
    return f"{'an' if vowel_sound else 'a'} {word}"


def number(value: float) -> str:
    """A number as a person writes it: 1,400,001; 2,294.5; never 1.4e+06."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


# --- argument types: each says what it expects when the text is not that ---


@dataclass(frozen=True)
class RelativeDay:
    """`today` or `yesterday`: which date that is depends on the account's time zone, so it is resolved
    once the profile is known (fittrack.clients.cli.context.Context.day), not on this machine's calendar."""

    word: str
    days_back: int

    def on(self, today: date) -> date:
        return today - timedelta(days=self.days_back)


RELATIVE_DAYS = {"today": RelativeDay("today", 0), "yesterday": RelativeDay("yesterday", 1)}


def day(text: str) -> date | RelativeDay:
    """An ISO date, or `today` / `yesterday` in the account's time zone."""
    relative = RELATIVE_DAYS.get(text.strip().lower())
    if relative is not None:
        return relative
    return iso_date(text)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; give YYYY-MM-DD, today or yesterday") from None


def whole_number(low: int, high: int):
    """An argument type for whole numbers from `low` to `high`, saying which when the text is not one."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is too small; give {low:,} or more")
        if value > high:
            raise argparse.ArgumentTypeError(f"{text} is too large; give at most {high:,}")
        return value

    return parse


positive_int = whole_number(1, 2**31 - 1)


def number_above_zero(high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be a number above 0")
        if value > high:
            raise argparse.ArgumentTypeError(f"{text} is too large; give at most {number(high)}")
        return value

    return parse


positive_number = number_above_zero(1e6)
# A call's deadline: up to a day, which already outlasts any download.
seconds = number_above_zero(86_400)


batch_size = whole_number(1, 1000)


def day_of(message: Date) -> date:
    return date(message.year, message.month, message.day)


def proto_date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)
