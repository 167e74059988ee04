"""Notifications a user receives."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from core.domain.goals import Goal, GoalPeriod


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


def goal_met_key(goal: Goal, period_start: date) -> str:
    return f"goal-met:{goal.goal_id}:{period_start.isoformat()}"


def goal_met_message(goal: Goal, reached: float) -> tuple[str, str]:
    span = "today" if goal.period is GoalPeriod.DAILY else "this week"
    title = f"Goal reached: {goal.metric.label}"
    body = f"You reached {reached:,.0f} {goal.metric.unit} {span}, meeting your goal of {goal.target:,.0f}."
    return title, body
