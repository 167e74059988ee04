"""Goals and where a user stands against them."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fittrack.core.domain.calendar import elapsed_fraction, week_of
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.wording import number


class GoalPeriod(enum.IntEnum):
    DAILY = 1
    WEEKLY = 2

    def bounds(self, day: date) -> tuple[date, date]:
        return (day, day) if self is GoalPeriod.DAILY else week_of(day)


@dataclass(frozen=True)
class Goal:
    goal_id: str
    user_id: str
    metric: MetricKind
    period: GoalPeriod
    target: float
    active: bool
    created_at: datetime
    updated_at: datetime
    # Whether the user wants notifications about this goal (nudges, goal met).
    notify: bool = True


def parse_goal_metric(value: int) -> MetricKind:
    metric = MetricKind.parse(value)
    if not metric.takes_goals:
        *others, last = [kind.label for kind in MetricKind if kind.takes_goals]
        choices = f"{', '.join(others)} or {last}"
        raise InvalidArgument(f"{metric.label} cannot have a goal: it is not summed; choose {choices}")
    return metric


def parse_goal_period(value: int) -> GoalPeriod:
    try:
        return GoalPeriod(value)
    except ValueError:
        raise InvalidArgument(f"unknown goal period {value}; use DAILY (1) or WEEKLY (2)") from None


def check_target(metric: MetricKind, period: GoalPeriod, target: float) -> float:
    ceiling = (metric.daily_goal_ceiling or 0) * (7 if period is GoalPeriod.WEEKLY else 1)
    if not math.isfinite(target) or target <= 0:
        raise InvalidArgument(f"target must be greater than 0, got {number(target)}")
    if target > ceiling:
        raise InvalidArgument(
            f"a {period.name.lower()} {metric.label} target of {number(target)} {metric.unit} is beyond what "
            f"a person can do; at most {number(ceiling)} {metric.unit}"
        )
    return float(target)


@dataclass(frozen=True)
class GoalProgress:
    goal: Goal
    period_start: date
    period_end: date
    current: float
    expected_by_now: float
    as_of: datetime

    @property
    def fraction(self) -> float:
        return self.current / self.goal.target

    @property
    def met(self) -> bool:
        return self.current >= self.goal.target

    @property
    def remaining(self) -> float:
        return max(self.goal.target - self.current, 0.0)


def progress(goal: Goal, day: date, daily_totals: dict[date, float], zone: ZoneInfo, now: datetime) -> GoalProgress:
    """Progress in the period containing `day`, given the daily totals of that period."""
    start, end = goal.period.bounds(day)
    current = sum(value for d, value in daily_totals.items() if start <= d <= end)
    pace = goal.target * elapsed_fraction(start, end, zone, now)
    return GoalProgress(goal, start, end, current, pace, now)
