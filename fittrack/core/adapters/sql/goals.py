"""Goals in SQLite or PostgreSQL (fittrack.core.adapters.sql.dialect)."""

from __future__ import annotations

from collections.abc import Sequence

from fittrack.core.adapters.sql.dialect import SqlRepository
from fittrack.core.domain.errors import AlreadyExists
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.ports import GoalRepository


class SqlGoals(SqlRepository, GoalRepository):
    _COLUMNS = "goal_id, user_id, metric, period, target, active, created_at, updated_at, notify"
    _QUALIFIED = ", ".join(f"g.{column}" for column in _COLUMNS.split(", "))

    def add(self, goal: Goal) -> None:
        self._hold_account(goal.user_id)
        # ON CONFLICT DO NOTHING: a failed INSERT would abort a whole PostgreSQL transaction.
        cursor = self._sql.execute(
            f"INSERT INTO goals ({self._COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                goal.goal_id,
                goal.user_id,
                int(goal.metric),
                int(goal.period),
                goal.target,
                goal.active,
                self._d.instant(goal.created_at),
                self._d.instant(goal.updated_at),
                goal.notify,
            ),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists(
                f"you already have a {goal.period.name.lower()} {goal.metric.label} goal; update it instead"
            )

    def get(self, goal_id: str) -> Goal | None:
        row = self._sql.execute(f"SELECT {self._COLUMNS} FROM goals WHERE goal_id = %s", (goal_id,)).fetchone()
        return self._goal(row) if row else None

    def get_many(self, goal_ids: Sequence[str]) -> dict[str, Goal]:
        rows = self._sql.rows_in(f"SELECT {self._COLUMNS} FROM goals WHERE", "goal_id", goal_ids)
        return {goal.goal_id: goal for goal in map(self._goal, rows)}

    def list_for_user(self, user_id: str, include_inactive: bool = False) -> list[Goal]:
        sql = f"SELECT {self._COLUMNS} FROM goals WHERE user_id = %s"
        if not include_inactive:
            sql += " AND active"
        return [self._goal(row) for row in self._sql.execute(sql + " ORDER BY created_at, goal_id", (user_id,))]

    def update(self, goal: Goal) -> None:
        self._sql.execute(
            "UPDATE goals SET target = %s, active = %s, notify = %s, updated_at = %s WHERE goal_id = %s",
            (goal.target, goal.active, goal.notify, self._d.instant(goal.updated_at), goal.goal_id),
        )

    def delete(self, goal_id: str) -> None:
        self._sql.execute("DELETE FROM goals WHERE goal_id = %s", (goal_id,))

    def zones_with_notified_goals(self) -> list[str]:
        rows = self._sql.execute(
            "SELECT DISTINCT u.time_zone FROM users u JOIN goals g ON g.user_id = u.user_id"
            " WHERE g.active AND g.notify ORDER BY u.time_zone"
        )
        return [zone for (zone,) in rows]

    def notified_goals_in_zone(self, zone: str, after: str, limit: int) -> list[Goal]:
        # Two range scans rather than one query: in one, PostgreSQL's planner joined every goal of every
        # zone to each page (80 ms a page of 2,000 users at 100,000; these take 20 ms). The repeated
        # `> after` bounds the goals index scan of the EXISTS, which otherwise starts at the first user.
        page = self._sql.execute(
            "SELECT u.user_id FROM users u WHERE u.time_zone = %s AND u.user_id > %s AND EXISTS ("
            " SELECT 1 FROM goals g WHERE g.user_id = u.user_id AND g.user_id > %s AND g.active AND g.notify)"
            " ORDER BY u.user_id LIMIT %s",
            (zone, after, after, limit),
        ).fetchall()
        if not page:
            return []
        last = page[-1][0]
        rows = self._sql.execute(
            f"SELECT {self._QUALIFIED} FROM goals g JOIN users u ON u.user_id = g.user_id"
            " WHERE u.time_zone = %s AND g.active AND g.notify"
            " AND g.user_id > %s AND g.user_id <= %s AND u.user_id > %s AND u.user_id <= %s"
            " ORDER BY g.user_id, g.created_at, g.goal_id",
            (zone, after, last, after, last),
        )
        return [self._goal(row) for row in rows]

    def _goal(self, row) -> Goal:
        goal_id, user_id, metric, period, target, active, created, updated, notify = row
        return Goal(
            goal_id,
            user_id,
            MetricKind(metric),
            GoalPeriod(period),
            target,
            bool(active),
            self._d.moment(created),
            self._d.moment(updated),
            bool(notify),
        )
