"""Notifications, their preferences and their push deliveries, in SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from fittrack.core.adapters.sql.dialect import SqlRepository
from fittrack.core.domain.delivery import Delivery, DeliveryState
from fittrack.core.domain.errors import NotFound
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.ports import DeliveryRepository, NotificationPage, NotificationRepository, PreferenceRepository


class SqlPreferences(SqlRepository, PreferenceRepository):
    def get_many(self, user_ids: Sequence[str]) -> dict[str, NotificationPreferences]:
        found = {user_id: NotificationPreferences(user_id) for user_id in user_ids}
        select = "SELECT user_id, enabled, quiet_start, quiet_end FROM notification_preferences WHERE"
        clock = self._d.from_clock
        for user_id, enabled, start, end in self._sql.rows_in(select, "user_id", list(found)):
            found[user_id] = NotificationPreferences(user_id, bool(enabled), clock(start), clock(end))
        return found

    def put(self, preferences: NotificationPreferences) -> None:
        self._hold_account(preferences.user_id)
        self._sql.execute(
            "INSERT INTO notification_preferences (user_id, enabled, quiet_start, quiet_end) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, quiet_start = excluded.quiet_start,"
            " quiet_end = excluded.quiet_end",
            (
                preferences.user_id,
                preferences.enabled,
                self._d.clock(preferences.quiet_start),
                self._d.clock(preferences.quiet_end),
            ),
        )


class SqlNotifications(SqlRepository, NotificationRepository):
    _COLUMNS = "seq, notification_id, user_id, kind, title, body, goal_id, created_at, read, idempotency_key"

    def add(self, notification: Notification) -> bool:
        cursor = self._sql.execute(
            "INSERT INTO notifications (notification_id, user_id, kind, title, body, goal_id, created_at, read,"
            " idempotency_key, local_date) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (user_id, idempotency_key) DO NOTHING",
            (
                notification.notification_id,
                notification.user_id,
                int(notification.kind),
                notification.title,
                notification.body,
                notification.goal_id,
                self._d.instant(notification.created_at),
                notification.read,
                notification.idempotency_key,
                self._d.day(notification.local_date),
            ),
        )
        return cursor.rowcount == 1

    def count_on_days(
        self, kind: NotificationKind, user_days: Sequence[tuple[str, date]]
    ) -> dict[tuple[str, date], int]:
        counts = dict.fromkeys(user_days, 0)
        if not counts:
            return counts
        if self._d.arrays:
            # PostgreSQL joins two arrays unnested side by side: one statement and one plan for any number of pairs.
            rows = self._sql.execute(
                "SELECT n.user_id, n.local_date, count(*) FROM notifications n"
                " JOIN unnest(%s::text[], %s::date[]) AS k (user_id, local_date)"
                " ON n.user_id = k.user_id AND n.local_date = k.local_date"
                " WHERE n.kind = %s GROUP BY n.user_id, n.local_date",
                ([user_id for user_id, _ in counts], [day for _, day in counts], int(kind)),
            ).fetchall()
        else:  # SQLite has no arrays: pairs of parameters, 250 pairs a statement (its limit is 32,766 parameters)
            pairs = list(counts)
            rows = []
            for offset in range(0, len(pairs), 250):
                chunk = pairs[offset : offset + 250]
                rows += self._sql.execute(
                    "SELECT user_id, local_date, count(*) FROM notifications WHERE kind = %s AND ("
                    + " OR ".join(["(user_id = %s AND local_date = %s)"] * len(chunk))
                    + ") GROUP BY user_id, local_date",
                    (int(kind), *[value for user_id, day in chunk for value in (user_id, self._d.day(day))]),
                ).fetchall()
        for user_id, day, count in rows:
            counts[(user_id, self._d.from_day(day))] = count
        return counts

    def page(self, user_id: str, unread_only: bool, limit: int, before: int | None) -> NotificationPage:
        sql = f"SELECT {self._COLUMNS} FROM notifications WHERE user_id = %s"
        args: list = [user_id]
        if unread_only:
            sql += " AND NOT read"
        if before is not None:
            sql += " AND seq < %s"
            args.append(before)
        rows = self._sql.execute(sql + " ORDER BY seq DESC LIMIT %s", (*args, limit + 1)).fetchall()
        unread = self._sql.execute(
            "SELECT count(*) FROM notifications WHERE user_id = %s AND NOT read", (user_id,)
        ).fetchone()[0]
        more = len(rows) > limit
        rows = rows[:limit]
        return NotificationPage([self._notification(r) for r in rows], rows[-1][0] if more else None, unread)

    def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> int:
        # FOR UPDATE: two requests marking the same notification must not both count it.
        owned = self._sql.rows_in(
            "SELECT notification_id, read FROM notifications WHERE user_id = %s AND",
            "notification_id",
            notification_ids,
            (user_id,),
            self._sql.for_update,
        )
        missing = set(notification_ids) - {row[0] for row in owned}
        if missing:
            raise NotFound(f"you have no notification {sorted(missing)[0]!r}; nothing was marked")
        unread = [row[0] for row in owned if not row[1]]
        self._sql.rows_in("UPDATE notifications SET read = true WHERE", "notification_id", unread, (), " RETURNING 1")
        return len(unread)

    def _notification(self, row) -> Notification:
        return _notification_of(self._d, *row[1:])


def _notification_of(
    dialect, notification_id, user_id, kind, title, body, goal_id, created, read, key, day=None
) -> Notification:
    """A notifications row as the domain's Notification, whichever query selected it."""
    return Notification(
        notification_id,
        user_id,
        NotificationKind(kind),
        title,
        body,
        dialect.moment(created),
        key,
        goal_id,
        bool(read),
        dialect.from_day(day),
    )


class SqlDeliveries(SqlRepository, DeliveryRepository):
    """Pushes with their retries; due_at is Unix seconds in SQLite (dialect.seconds), to sort as a number."""

    _COLUMNS = "d.notification_id, d.user_id, d.due_at, d.updated_at, d.attempts, d.state, d.last_error"
    _NOTIFICATION = "n.kind, n.title, n.body, n.goal_id, n.created_at, n.read, n.idempotency_key, n.local_date"
    _JOINED = (
        f"SELECT {_COLUMNS}, {_NOTIFICATION} FROM notification_deliveries d"
        " JOIN notifications n USING (notification_id)"
    )

    def add(self, delivery: Delivery) -> None:
        self._sql.execute(
            "INSERT INTO notification_deliveries"
            " (notification_id, user_id, due_at, updated_at, attempts, state, last_error)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (notification_id) DO NOTHING",
            (
                delivery.notification_id,
                delivery.user_id,
                self._d.seconds(delivery.due_at),
                self._d.instant(delivery.updated_at),
                delivery.attempts,
                delivery.state.value,
                delivery.last_error,
            ),
        )

    def get_many(self, notification_ids: Sequence[str]) -> dict[str, Delivery]:
        select = f"SELECT {self._COLUMNS} FROM notification_deliveries d WHERE"
        return {row[0]: self._delivery(row) for row in self._sql.rows_in(select, "d.notification_id", notification_ids)}

    def claim(
        self, now: datetime, lease_until: datetime, limit: int, notification_ids: Sequence[str] | None = None
    ) -> list[tuple[Delivery, Notification]]:
        if notification_ids is not None and not notification_ids:
            return []
        only, only_args = "", []
        if notification_ids is not None:
            condition, only_args = self._d.any_of("d.notification_id", list(dict.fromkeys(notification_ids)))
            only = f" AND {condition}"
        if self._d.skip_locked:
            # SKIP LOCKED: dispatchers claiming at the same moment take different rows instead of queueing.
            rows = self._sql.execute(
                "WITH due AS (SELECT d.notification_id FROM notification_deliveries d"
                f" WHERE d.state = 'pending' AND d.due_at <= %s{only} ORDER BY d.due_at LIMIT %s{self._d.skip_locked})"
                " UPDATE notification_deliveries d SET attempts = d.attempts + 1, due_at = %s, updated_at = %s"
                " FROM due, notifications n"
                " WHERE d.notification_id = due.notification_id AND n.notification_id = d.notification_id"
                f" RETURNING {self._COLUMNS}, {self._NOTIFICATION}",
                (self._d.seconds(now), *only_args, limit, self._d.seconds(lease_until), self._d.instant(now)),
            ).fetchall()
            return [(self._delivery(row[:7]), self._notification(row)) for row in rows]
        # SQLite has one writer at a time (BEGIN IMMEDIATE): nothing else can claim between this read and the
        # updates, so it needs no row locks (and has no SKIP LOCKED, nor RETURNING of a joined table).
        rows = self._sql.execute(
            self._JOINED + f" WHERE d.state = 'pending' AND d.due_at <= %s{only} ORDER BY d.due_at LIMIT %s",
            (self._d.seconds(now), *only_args, limit),
        ).fetchall()
        claimed = []
        for row in rows:
            delivery, notification = self._delivery(row[:7]), self._notification(row)
            delivery = replace(delivery, attempts=delivery.attempts + 1, due_at=lease_until, updated_at=now)
            self._sql.execute(
                "UPDATE notification_deliveries SET attempts = %s, due_at = %s, updated_at = %s"
                " WHERE notification_id = %s",
                (delivery.attempts, self._d.seconds(lease_until), self._d.instant(now), delivery.notification_id),
            )
            claimed.append((delivery, notification))
        return claimed

    def settle(self, delivery: Delivery) -> bool:
        cursor = self._sql.execute(
            "UPDATE notification_deliveries SET state = %s, due_at = %s, updated_at = %s, last_error = %s"
            " WHERE notification_id = %s AND state = 'pending' AND attempts = %s",
            (
                delivery.state.value,
                self._d.seconds(delivery.due_at),
                self._d.instant(delivery.updated_at),
                delivery.last_error,
                delivery.notification_id,
                delivery.attempts,
            ),
        )
        return cursor.rowcount == 1

    def next_due(self) -> datetime | None:
        (due,) = self._sql.execute("SELECT min(due_at) FROM notification_deliveries WHERE state = 'pending'").fetchone()
        return self._d.from_seconds(due)

    def dead(self, limit: int) -> list[tuple[Delivery, Notification]]:
        rows = self._sql.execute(
            self._JOINED + " WHERE d.state = 'dead' ORDER BY d.updated_at DESC LIMIT %s", (limit,)
        ).fetchall()
        return [(self._delivery(row[:7]), self._notification(row)) for row in rows]

    def replay(self, notification_ids: Sequence[str] | None, now: datetime) -> list[str]:
        sql = (
            "UPDATE notification_deliveries SET state = 'pending', attempts = 0, due_at = %s, updated_at = %s"
            " WHERE state = 'dead'"
        )
        args, returning = (self._d.seconds(now), self._d.instant(now)), " RETURNING notification_id"
        if notification_ids is None:
            rows = self._sql.execute(sql + returning, args).fetchall()
        else:
            rows = self._sql.rows_in(sql + " AND", "notification_id", notification_ids, args, returning)
        return [row[0] for row in rows]

    def _delivery(self, row) -> Delivery:
        notification_id, user_id, due, updated, attempts, state, error = row
        return Delivery(
            notification_id,
            user_id,
            self._d.from_seconds(due),
            self._d.moment(updated),
            attempts,
            DeliveryState(state),
            error,
        )

    def _notification(self, row) -> Notification:
        # The delivery's own columns come first; the notification's id and user are the delivery's.
        return _notification_of(self._d, *row[:2], *row[7:])
