"""Creating, changing and measuring goals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

from fittrack.core.domain.accounts import Principal, is_id
from fittrack.core.domain.calendar import local_today, zone_named
from fittrack.core.domain.errors import InvalidArgument, NotFound, Unauthenticated
from fittrack.core.domain.goals import (
    Goal,
    GoalProgress,
    check_target,
    parse_goal_metric,
    parse_goal_period,
    progress,
)
from fittrack.core.ports import AccountsUnitOfWork, MetricStore


class Goals:
    def __init__(
        self, uow: Callable[[], AccountsUnitOfWork], metrics: MetricStore, clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._metrics = metrics
        self._now = clock

    def create(
        self, principal: Principal, metric_value: int, period_value: int, target: float, notify: bool = True
    ) -> Goal:
        metric = parse_goal_metric(metric_value)
        period = parse_goal_period(period_value)
        now = self._now()
        goal = Goal(
            goal_id=uuid.uuid4().hex,
            user_id=principal.user_id,
            metric=metric,
            period=period,
            target=check_target(metric, period, target),
            active=True,
            created_at=now,
            updated_at=now,
            notify=notify,
        )
        with self._uow() as uow:
            uow.goals.add(goal)
            uow.commit()
        return goal

    def list(self, principal: Principal, include_inactive: bool) -> list[Goal]:
        with self._uow() as uow:
            return uow.goals.list_for_user(principal.user_id, include_inactive)

    def update(
        self,
        principal: Principal,
        goal_id: str,
        target: float | None,
        active: bool | None,
        notify: bool | None = None,
    ) -> Goal:
        if target is None and active is None and notify is None:
            raise InvalidArgument("nothing to change: set target, active or notify")
        with self._uow() as uow:
            goal = self._owned(uow, principal, goal_id)
            changed = replace(
                goal,
                target=check_target(goal.metric, goal.period, target) if target is not None else goal.target,
                active=goal.active if active is None else active,
                notify=goal.notify if notify is None else notify,
                updated_at=self._now(),
            )
            uow.goals.update(changed)
            uow.commit()
        return changed

    def delete(self, principal: Principal, goal_id: str) -> None:
        with self._uow() as uow:
            self._owned(uow, principal, goal_id)
            uow.goals.delete(goal_id)
            uow.commit()

    def progress(self, principal: Principal, goal_id: str, day: date | None) -> GoalProgress:
        now = self._now()
        with self._uow() as uow:
            goal = self._owned(uow, principal, goal_id)
            user = uow.users.get(principal.user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        zone = zone_named(user.profile.time_zone)
        start, end = goal.period.bounds(day or local_today(zone, now))
        totals = {d.day: d.value for d in self._metrics.days(principal.user_id, goal.metric, start, end)}
        return progress(goal, start, totals, zone, now)

    @staticmethod
    def _owned(uow: AccountsUnitOfWork, principal: Principal, goal_id: str) -> Goal:
        if not goal_id:
            raise InvalidArgument("goal_id is missing")
        # Ids are 32 hex digits; anything else cannot name a goal, so skip the store.
        goal = uow.goals.get(goal_id) if is_id(goal_id) else None
        # Someone else's goal looks exactly like a missing one: ids are not an oracle.
        if goal is None or goal.user_id != principal.user_id:
            raise NotFound(f"you have no goal {goal_id!r}")
        return goal
