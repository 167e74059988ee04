"""Notifications a user receives."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from fittrack.core.domain.goals import Goal, GoalPeriod


class NotificationKind(enum.IntEnum):
    GOAL_MET = 1
    BEHIND_GOAL = 2
    REPORT_READY = 3
    PASSWORD_EXPIRING = 4


@dataclass(frozen=True)
class Notification:
    notification_id: str
    user_id: str
    kind: NotificationKind
    title: str
    body: str
    created_at: datetime
    # Two notifications with the same key are one: the second is dropped, so
    # a retried evaluation or a replayed batch never notifies twice.
    idempotency_key: str
    goal_id: str = ""
    read: bool = False
    # The user's local day a behind-goal nudge counts towards, for the daily cap; None for other kinds.
    local_date: date | None = None


# Nudges are useful a few times a day and nagging beyond that: at most this many
# BEHIND_GOAL notifications per user per local day, whatever the number of goals.
DAILY_NUDGE_CAP = 3


@dataclass(frozen=True)
class NotificationPreferences:
    """What a user lets Fittrack send them.

    `enabled` off: nothing new is created for them. Quiet hours (local times,
    start inclusive, end exclusive, may wrap past midnight; both None for none)
    hold back pushes to their devices until they end, and no behind-goal nudge
    is made inside them: one that arrives hours late is stale.
    """

    user_id: str
    enabled: bool = True
    quiet_start: time | None = None
    quiet_end: time | None = None

    def is_quiet(self, local: time) -> bool:
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return False
        moment = local.replace(second=0, microsecond=0, tzinfo=None)
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= moment < self.quiet_end
        return moment >= self.quiet_start or moment < self.quiet_end

    def quiet_until(self, local_now: datetime) -> datetime | None:
        """When the quiet hours around `local_now` (an aware local time) end; None outside them."""
        if not self.is_quiet(local_now.timetz()) or self.quiet_end is None:
            return None
        end = datetime.combine(local_now.date(), self.quiet_end, tzinfo=local_now.tzinfo)
        if end <= local_now:
            end += timedelta(days=1)
        return end


def goal_met_key(goal: Goal, period_start: date) -> str:
    return f"goal-met:{goal.goal_id}:{period_start.isoformat()}"


def behind_goal_key(goal_id: str, local_day: date, slot: time) -> str:
    """One nudge per goal and evaluation slot: a re-run of the slot produces the same key."""
    return f"behind:{goal_id}:{local_day.isoformat()}:{slot.strftime('%H:%M')}"


def report_ready_key(user_id: str, week_start: date) -> str:
    return f"report-ready:{user_id}:{week_start.isoformat()}"


def goal_met_message(goal: Goal, reached: float) -> tuple[str, str]:
    span = "today" if goal.period is GoalPeriod.DAILY else "this week"
    title = f"Goal reached: {goal.metric.label}"
    body = f"You reached {reached:,.0f} {goal.metric.unit} {span}, meeting your goal of {goal.target:,.0f}."
    return title, body
