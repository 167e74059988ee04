"""The embedded profile's account repositories: users, sessions, goals, notifications and the rest, in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time

from fittrack.core.adapters.sqlite import SqliteDatabase, from_text, to_text
from fittrack.core.domain.accounts import Credentials, Profile, Sex, User
from fittrack.core.domain.delivery import Delivery, DeliveryState
from fittrack.core.domain.errors import AlreadyExists, NotFound, Unavailable
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import (
    AccountsUnitOfWork,
    AddressFailureRepository,
    DeliveryRepository,
    EvaluationClaimRepository,
    GoalRepository,
    IdentityRepository,
    LoginFailureRepository,
    NotificationPage,
    NotificationRepository,
    PreferenceRepository,
    RefreshRecord,
    SessionRepository,
    UserRepository,
)


class SqliteUnitOfWork(AccountsUnitOfWork):
    """`read_only` units of work only read: they take no write lock, so WAL lets
    them run beside the ingest log's writer and the persister."""

    def __init__(self, db: SqliteDatabase, read_only: bool = False) -> None:
        self._db = db
        self._read_only = read_only

    def __enter__(self) -> SqliteUnitOfWork:
        self._conn = self._db.connection()
        # IMMEDIATE takes the write lock up front: a deferred transaction that
        # reads and then writes fails at once if another writer got in between.
        try:
            self._conn.execute("BEGIN" if self._read_only else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Unavailable(f"the database is busy ({error}); try again") from error
        self.users = SqliteUsers(self._conn)
        self.sessions = SqliteSessions(self._conn)
        self.goals = SqliteGoals(self._conn)
        self.notifications = SqliteNotifications(self._conn)
        self.preferences = SqlitePreferences(self._conn)
        self.deliveries = SqliteDeliveries(self._conn)
        self.login_failures = SqliteLoginFailures(self._conn)
        self.address_failures = SqliteAddressFailures(self._conn)
        self.identities = SqliteIdentities(self._conn)
        self.evaluation_claims = SqliteEvaluationClaims(self._conn)
        return self

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


class SqliteUsers(UserRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, user: User, credentials: Credentials | None) -> None:
        try:
            self._conn.execute(
                "INSERT INTO users (user_id, username, display_name, time_zone, created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    user.user_id,
                    user.username,
                    user.profile.display_name,
                    user.profile.time_zone,
                    to_text(user.created_at),
                ),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"username {user.username!r} is taken; choose another") from None
        self._conn.execute("INSERT INTO user_metric (user_id) VALUES (?)", (user.user_id,))
        self.update_profile(user.user_id, user.profile)
        if credentials is not None:  # an account made by single sign-on has no password
            self.set_credentials(credentials)

    _SELECT = """
        SELECT u.user_id, u.username, u.display_name, u.time_zone, u.created_at,
               m.height_cm, m.weight_kg, m.birth_date, m.stated_age, m.sex
        FROM users u JOIN user_metric m USING (user_id)
    """

    def get(self, user_id: str) -> User | None:
        return self._user(self._conn.execute(self._SELECT + " WHERE u.user_id = ?", (user_id,)).fetchone())

    def get_by_username(self, username: str) -> User | None:
        return self._user(self._conn.execute(self._SELECT + " WHERE u.username = ?", (username,)).fetchone())

    @staticmethod
    def _user(row) -> User | None:
        if row is None:
            return None
        user_id, username, display_name, zone, created, height, weight, birth, age, sex = row
        profile = Profile(
            display_name=display_name,
            height_cm=height,
            weight_kg=weight,
            birth_date=date.fromisoformat(birth) if birth else None,
            stated_age=age,
            sex=Sex(sex),
            time_zone=zone,
        )
        return User(user_id, username, profile, from_text(created))

    def update_profile(self, user_id: str, profile: Profile) -> None:
        self._conn.execute(
            "UPDATE users SET display_name = ?, time_zone = ? WHERE user_id = ?",
            (profile.display_name, profile.time_zone, user_id),
        )
        self._conn.execute(
            "UPDATE user_metric SET height_cm = ?, weight_kg = ?, birth_date = ?, stated_age = ?, sex = ?"
            " WHERE user_id = ?",
            (
                profile.height_cm,
                profile.weight_kg,
                profile.birth_date.isoformat() if profile.birth_date else None,
                profile.stated_age,
                int(profile.sex),
                user_id,
            ),
        )

    def get_credentials(self, user_id: str) -> Credentials | None:
        row = self._conn.execute(
            "SELECT password_hash, created_at, expires_at FROM credentials WHERE user_id = ?", (user_id,)
        ).fetchone()
        return Credentials(user_id, bytes(row[0]), from_text(row[1]), from_text(row[2])) if row else None

    def set_credentials(self, credentials: Credentials) -> None:
        self._conn.execute(
            "INSERT INTO credentials (user_id, password_hash, created_at, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (
                credentials.user_id,
                credentials.password_hash,
                to_text(credentials.created_at),
                to_text(credentials.expires_at),
            ),
        )

    def delete(self, user_id: str) -> None:
        self._conn.execute("DELETE FROM device_cursors WHERE user_id = ?", (user_id,))
        self._conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))

    def time_zones(self) -> list[str]:
        return [zone for (zone,) in self._conn.execute("SELECT DISTINCT time_zone FROM users ORDER BY time_zone")]

    def ids_in_zone(self, zone: str, after: str, limit: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT user_id FROM users WHERE time_zone = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (zone, after, limit),
        )
        return [user_id for (user_id,) in rows]

    def expiring_in_zone(
        self, zone: str, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        # Stored instants are UTC ISO strings of one format, so they compare in time order.
        rows = self._conn.execute(
            "SELECT u.user_id, c.expires_at FROM credentials c JOIN users u USING (user_id)"
            " WHERE c.expires_at >= ? AND c.expires_at < ? AND u.time_zone = ? AND u.user_id > ?"
            " ORDER BY u.user_id LIMIT ?",
            (to_text(start), to_text(end), zone, after, limit),
        )
        return [(user_id, from_text(expires)) for user_id, expires in rows]

    def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        found = {}
        for chunk in _chunks(list(dict.fromkeys(user_ids))):
            rows = self._conn.execute(self._SELECT + f" WHERE u.user_id IN ({_marks(chunk)})", chunk).fetchall()
            found.update((user.user_id, user) for user in map(self._user, rows))
        return found


class SqliteSessions(SessionRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, session_id: str, user_id: str, now: datetime) -> None:
        self._conn.execute(
            "INSERT INTO sessions (session_id, user_id, created_at) VALUES (?, ?, ?)",
            (session_id, user_id, to_text(now)),
        )

    def is_active(self, session_id: str) -> bool:
        row = self._conn.execute("SELECT revoked_at FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return row is not None and row[0] is None

    def started_at(self, session_id: str) -> datetime | None:
        row = self._conn.execute("SELECT created_at FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return from_text(row[0]) if row else None

    def revoke(self, session_id: str, now: datetime) -> None:
        self._conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            (to_text(now), session_id),
        )

    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        self._conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND session_id IS NOT ?",
            (to_text(now), user_id, keep),
        )

    def add_refresh(self, record: RefreshRecord) -> None:
        self._conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used) VALUES (?, ?, ?, ?, ?)",
            (record.token_hash, record.session_id, record.user_id, to_text(record.expires_at), int(record.used)),
        )

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        row = self._conn.execute(
            "SELECT session_id, user_id, expires_at, used FROM refresh_tokens WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        return RefreshRecord(token_hash, row[0], row[1], from_text(row[2]), bool(row[3])) if row else None

    def mark_refresh_used(self, token_hash: str) -> None:
        self._conn.execute("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?", (token_hash,))


class SqliteLoginFailures(LoginFailureRepository):
    _COLUMNS = "username, window_start, count, pauses, paused_until, last_failure"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, username: str) -> LoginFailures | None:
        row = self._conn.execute(f"SELECT {self._COLUMNS} FROM login_failures WHERE username = ?", (username,))
        row = row.fetchone()
        if row is None:
            return None
        name, window_start, count, pauses, paused_until, last_failure = row
        return LoginFailures(
            name, from_text(window_start), count, pauses, from_text(paused_until), from_text(last_failure)
        )

    def put(self, failures: LoginFailures) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO login_failures ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                failures.username,
                to_text(failures.window_start),
                failures.count,
                failures.pauses,
                to_text(failures.paused_until),
                to_text(failures.last_failure),
            ),
        )

    def clear(self, username: str) -> None:
        self._conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))

    def forget_before(self, moment: datetime) -> int:
        # ISO texts in UTC, all written by _iso: they sort as the moments do.
        return self._conn.execute("DELETE FROM login_failures WHERE last_failure < ?", (to_text(moment),)).rowcount


class SqliteAddressFailures(AddressFailureRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def recent(self, address: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        rows = self._conn.execute(
            "SELECT failed_at FROM address_login_failures WHERE address = ? AND failed_at > ? AND failed_at <= ?"
            " ORDER BY failed_at DESC LIMIT ?",
            (address, start.timestamp(), end.timestamp(), limit),
        )
        return [datetime.fromtimestamp(row[0], UTC) for row in rows]

    def add(self, address: str, moment: datetime, forget_before: datetime) -> None:
        self._conn.execute(
            "DELETE FROM address_login_failures WHERE address = ? AND failed_at < ?",
            (address, forget_before.timestamp()),
        )
        self._conn.execute(
            "INSERT INTO address_login_failures (address, failed_at) VALUES (?, ?)", (address, moment.timestamp())
        )

    def forget_before(self, moment: datetime) -> int:
        return self._conn.execute(
            "DELETE FROM address_login_failures WHERE failed_at < ?", (moment.timestamp(),)
        ).rowcount


class SqliteEvaluationClaims(EvaluationClaimRepository):
    # Moments are ISO texts in UTC, all written by _iso: they compare as the moments do.

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def claim(self, key: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        taken = self._conn.execute(
            "INSERT INTO evaluation_claims (work_key, holder, lease_until) VALUES (?, ?, ?)"
            " ON CONFLICT (work_key) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until"
            " WHERE finished_at IS NULL AND (holder = excluded.holder OR lease_until < ?)",
            (key, holder, to_text(lease_until), to_text(now)),
        )
        return taken.rowcount == 1

    def finish(self, key: str, holder: str, now: datetime) -> None:
        self._conn.execute(
            "UPDATE evaluation_claims SET finished_at = ? WHERE work_key = ? AND holder = ?",
            (to_text(now), key, holder),
        )

    def abandoned(self, now: datetime, limit: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT work_key FROM evaluation_claims WHERE finished_at IS NULL AND lease_until < ?"
            " ORDER BY lease_until LIMIT ?",
            (to_text(now), limit),
        )
        return [key for (key,) in rows]

    def forget_before(self, moment: datetime) -> int:
        return self._conn.execute("DELETE FROM evaluation_claims WHERE lease_until < ?", (to_text(moment),)).rowcount


class SqliteIdentities(IdentityRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, issuer: str, subject: str) -> ExternalIdentity | None:
        row = self._conn.execute(
            "SELECT user_id, created_at FROM sso_identities WHERE issuer = ? AND subject = ?", (issuer, subject)
        ).fetchone()
        return ExternalIdentity(issuer, subject, row[0], from_text(row[1])) if row else None

    def add(self, identity: ExternalIdentity) -> None:
        try:
            self._conn.execute(
                "INSERT INTO sso_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
                (identity.issuer, identity.subject, identity.user_id, to_text(identity.created_at)),
            )
        except sqlite3.IntegrityError as error:
            if self.get(identity.issuer, identity.subject) is not None:
                raise AlreadyExists("this provider login is linked to an account already") from None
            raise NotFound(f"user {identity.user_id} does not exist") from error

    def for_user(self, user_id: str) -> list[ExternalIdentity]:
        rows = self._conn.execute(
            "SELECT issuer, subject, created_at FROM sso_identities WHERE user_id = ?"
            " ORDER BY created_at, issuer, subject",
            (user_id,),
        )
        return [ExternalIdentity(issuer, subject, user_id, from_text(created)) for issuer, subject, created in rows]

    def use_nonce(self, issuer: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        self._conn.execute("DELETE FROM sso_used_nonces WHERE expires_at <= ?", (now.timestamp(),))
        cursor = self._conn.execute(
            "INSERT INTO sso_used_nonces (issuer, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (issuer, nonce, expires_at.timestamp()),
        )
        return cursor.rowcount == 1


class SqliteGoals(GoalRepository):
    _COLUMNS = "goal_id, user_id, metric, period, target, active, created_at, updated_at, notify"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, goal: Goal) -> None:
        try:
            self._conn.execute(
                f"INSERT INTO goals ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    goal.goal_id,
                    goal.user_id,
                    int(goal.metric),
                    int(goal.period),
                    goal.target,
                    int(goal.active),
                    to_text(goal.created_at),
                    to_text(goal.updated_at),
                    int(goal.notify),
                ),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(
                f"you already have a {goal.period.name.lower()} {goal.metric.label} goal; update it instead"
            ) from None

    def get(self, goal_id: str) -> Goal | None:
        row = self._conn.execute(f"SELECT {self._COLUMNS} FROM goals WHERE goal_id = ?", (goal_id,)).fetchone()
        return self._goal(row) if row else None

    def get_many(self, goal_ids: Sequence[str]) -> dict[str, Goal]:
        found = {}
        for chunk in _chunks(list(dict.fromkeys(goal_ids))):
            rows = self._conn.execute(f"SELECT {self._COLUMNS} FROM goals WHERE goal_id IN ({_marks(chunk)})", chunk)
            found.update((goal.goal_id, goal) for goal in map(self._goal, rows))
        return found

    def list_for_user(self, user_id: str, include_inactive: bool = False) -> list[Goal]:
        sql = f"SELECT {self._COLUMNS} FROM goals WHERE user_id = ?"
        if not include_inactive:
            sql += " AND active = 1"
        return [self._goal(row) for row in self._conn.execute(sql + " ORDER BY created_at, goal_id", (user_id,))]

    def update(self, goal: Goal) -> None:
        self._conn.execute(
            "UPDATE goals SET target = ?, active = ?, notify = ?, updated_at = ? WHERE goal_id = ?",
            (goal.target, int(goal.active), int(goal.notify), to_text(goal.updated_at), goal.goal_id),
        )

    def delete(self, goal_id: str) -> None:
        self._conn.execute("DELETE FROM goals WHERE goal_id = ?", (goal_id,))

    def zones_with_notified_goals(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT u.time_zone FROM users u JOIN goals g ON g.user_id = u.user_id"
            " WHERE g.active = 1 AND g.notify = 1 ORDER BY u.time_zone"
        )
        return [zone for (zone,) in rows]

    def notified_goals_in_zone(self, zone: str, after: str, limit: int) -> list[Goal]:
        rows = self._conn.execute(
            f"SELECT {self._COLUMNS} FROM goals WHERE active = 1 AND notify = 1 AND user_id IN ("
            " SELECT DISTINCT u.user_id FROM users u JOIN goals g ON g.user_id = u.user_id"
            "  WHERE u.time_zone = ? AND u.user_id > ? AND g.active = 1 AND g.notify = 1"
            "  ORDER BY u.user_id LIMIT ?)"
            " ORDER BY user_id, created_at, goal_id",
            (zone, after, limit),
        )
        return [self._goal(row) for row in rows]

    @staticmethod
    def _goal(row) -> Goal:
        goal_id, user_id, metric, period, target, active, created, updated, notify = row
        return Goal(
            goal_id,
            user_id,
            MetricKind(metric),
            GoalPeriod(period),
            target,
            bool(active),
            from_text(created),
            from_text(updated),
            bool(notify),
        )


class SqlitePreferences(PreferenceRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get_many(self, user_ids: Sequence[str]) -> dict[str, NotificationPreferences]:
        found = {user_id: NotificationPreferences(user_id) for user_id in user_ids}
        ids = list(found)
        for offset in range(0, len(ids), 500):
            chunk = ids[offset : offset + 500]
            rows = self._conn.execute(
                "SELECT user_id, enabled, quiet_start, quiet_end FROM notification_preferences"
                f" WHERE user_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for user_id, enabled, start, end in rows:
                found[user_id] = NotificationPreferences(user_id, bool(enabled), _clock_time(start), _clock_time(end))
        return found

    def put(self, preferences: NotificationPreferences) -> None:
        self._conn.execute(
            "INSERT INTO notification_preferences (user_id, enabled, quiet_start, quiet_end) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, quiet_start = excluded.quiet_start,"
            " quiet_end = excluded.quiet_end",
            (
                preferences.user_id,
                int(preferences.enabled),
                _clock_text(preferences.quiet_start),
                _clock_text(preferences.quiet_end),
            ),
        )


def _clock_text(moment: time | None) -> str | None:
    return moment.strftime("%H:%M") if moment else None


def _clock_time(text: str | None) -> time | None:
    return time.fromisoformat(text) if text else None


class SqliteNotifications(NotificationRepository):
    _COLUMNS = "seq, notification_id, user_id, kind, title, body, goal_id, created_at, read, idempotency_key"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, notification: Notification) -> bool:
        cursor = self._conn.execute(
            "INSERT INTO notifications (notification_id, user_id, kind, title, body, goal_id, created_at, read,"
            " idempotency_key, local_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, idempotency_key) DO NOTHING",
            (
                notification.notification_id,
                notification.user_id,
                int(notification.kind),
                notification.title,
                notification.body,
                notification.goal_id,
                to_text(notification.created_at),
                int(notification.read),
                notification.idempotency_key,
                notification.local_date.isoformat() if notification.local_date else None,
            ),
        )
        return cursor.rowcount == 1

    def count_on_days(
        self, kind: NotificationKind, user_days: Sequence[tuple[str, date]]
    ) -> dict[tuple[str, date], int]:
        counts = dict.fromkeys(user_days, 0)
        for chunk in _chunks(list(counts), 250):
            pairs = " OR ".join(["(user_id = ? AND local_date = ?)"] * len(chunk))
            rows = self._conn.execute(
                f"SELECT user_id, local_date, count(*) FROM notifications WHERE kind = ? AND ({pairs})"
                " GROUP BY user_id, local_date",
                (int(kind), *[value for user_id, day in chunk for value in (user_id, day.isoformat())]),
            )
            for user_id, day, count in rows:
                counts[(user_id, date.fromisoformat(day))] = count
        return counts

    def page(self, user_id: str, unread_only: bool, limit: int, before: int | None) -> NotificationPage:
        sql = f"SELECT {self._COLUMNS} FROM notifications WHERE user_id = ?"
        args: list = [user_id]
        if unread_only:
            sql += " AND read = 0"
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        rows = self._conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
        unread = self._conn.execute(
            "SELECT count(*) FROM notifications WHERE user_id = ? AND read = 0", (user_id,)
        ).fetchone()[0]
        more = len(rows) > limit
        rows = rows[:limit]
        return NotificationPage([self._notification(r) for r in rows], rows[-1][0] if more else None, unread)

    def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> int:
        marks = ",".join("?" * len(notification_ids))
        owned = self._conn.execute(
            f"SELECT notification_id, read FROM notifications WHERE user_id = ? AND notification_id IN ({marks})",
            (user_id, *notification_ids),
        ).fetchall()
        missing = set(notification_ids) - {row[0] for row in owned}
        if missing:
            raise NotFound(f"you have no notification {sorted(missing)[0]!r}; nothing was marked")
        unread = [row[0] for row in owned if not row[1]]
        self._conn.executemany("UPDATE notifications SET read = 1 WHERE notification_id = ?", [(i,) for i in unread])
        return len(unread)

    @staticmethod
    def _notification(row) -> Notification:
        return _notification_of(*row[1:])


def _notification_of(
    notification_id, user_id, kind, title, body, goal_id, created, read, key, day=None
) -> Notification:
    """A notifications row as the domain's Notification, whichever query selected it."""
    return Notification(
        notification_id,
        user_id,
        NotificationKind(kind),
        title,
        body,
        from_text(created),
        key,
        goal_id,
        bool(read),
        date.fromisoformat(day) if day else None,
    )


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    """Slices small enough for one statement's parameters (SQLite allows 32,766 at most)."""
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]


def _marks(items: Sequence) -> str:
    return ",".join("?" * len(items))


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SqliteDeliveries(DeliveryRepository):
    _COLUMNS = "d.notification_id, d.user_id, d.due_at, d.updated_at, d.attempts, d.state, d.last_error"
    _JOINED = (
        f"SELECT {_COLUMNS}, n.kind, n.title, n.body, n.goal_id, n.created_at, n.read, n.idempotency_key, n.local_date"
        " FROM notification_deliveries d JOIN notifications n USING (notification_id)"
    )

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, delivery: Delivery) -> None:
        self._conn.execute(
            "INSERT INTO notification_deliveries"
            " (notification_id, user_id, due_at, updated_at, attempts, state, last_error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notification_id) DO NOTHING",
            (
                delivery.notification_id,
                delivery.user_id,
                _seconds(delivery.due_at),
                to_text(delivery.updated_at),
                delivery.attempts,
                delivery.state.value,
                delivery.last_error,
            ),
        )

    def get_many(self, notification_ids: Sequence[str]) -> dict[str, Delivery]:
        found = {}
        for chunk in _chunks(list(dict.fromkeys(notification_ids))):
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM notification_deliveries d WHERE d.notification_id IN ({_marks(chunk)})",
                chunk,
            )
            found.update((row[0], self._delivery(row)) for row in rows)
        return found

    def claim(
        self, now: datetime, lease_until: datetime, limit: int, notification_ids: Sequence[str] | None = None
    ) -> list[tuple[Delivery, Notification]]:
        # One writer at a time (BEGIN IMMEDIATE): nothing else can claim between this read and the update.
        sql = self._JOINED + " WHERE d.state = 'pending' AND d.due_at <= ?"
        args: list = [_seconds(now)]
        if notification_ids is not None:
            if not notification_ids:
                return []
            sql += f" AND d.notification_id IN ({_marks(notification_ids)})"
            args.extend(notification_ids)
        rows = self._conn.execute(sql + " ORDER BY d.due_at LIMIT ?", (*args, limit)).fetchall()
        claimed = []
        for row in rows:
            delivery, notification = self._delivery(row[:7]), self._notification(row)
            delivery = replace(delivery, attempts=delivery.attempts + 1, due_at=lease_until, updated_at=now)
            self._conn.execute(
                "UPDATE notification_deliveries SET attempts = ?, due_at = ?, updated_at = ? WHERE notification_id = ?",
                (delivery.attempts, _seconds(lease_until), to_text(now), delivery.notification_id),
            )
            claimed.append((delivery, notification))
        return claimed

    def settle(self, delivery: Delivery) -> bool:
        cursor = self._conn.execute(
            "UPDATE notification_deliveries SET state = ?, due_at = ?, updated_at = ?, last_error = ?"
            " WHERE notification_id = ? AND state = 'pending' AND attempts = ?",
            (
                delivery.state.value,
                _seconds(delivery.due_at),
                to_text(delivery.updated_at),
                delivery.last_error,
                delivery.notification_id,
                delivery.attempts,
            ),
        )
        return cursor.rowcount == 1

    def next_due(self) -> datetime | None:
        (due,) = self._conn.execute(
            "SELECT min(due_at) FROM notification_deliveries WHERE state = 'pending'"
        ).fetchone()
        return _at(due) if due is not None else None

    def dead(self, limit: int) -> list[tuple[Delivery, Notification]]:
        rows = self._conn.execute(
            self._JOINED + " WHERE d.state = 'dead' ORDER BY d.updated_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [(self._delivery(row[:7]), self._notification(row)) for row in rows]

    def replay(self, notification_ids: Sequence[str] | None, now: datetime) -> list[str]:
        sql = "SELECT notification_id FROM notification_deliveries WHERE state = 'dead'"
        ids: list[str] = []
        if notification_ids is None:
            ids = [i for (i,) in self._conn.execute(sql)]
        else:
            for chunk in _chunks(list(dict.fromkeys(notification_ids))):
                ids += [i for (i,) in self._conn.execute(sql + f" AND notification_id IN ({_marks(chunk)})", chunk)]
        self._conn.executemany(
            "UPDATE notification_deliveries SET state = 'pending', attempts = 0, due_at = ?, updated_at = ?"
            " WHERE notification_id = ?",
            [(_seconds(now), to_text(now), i) for i in ids],
        )
        return ids

    @staticmethod
    def _delivery(row) -> Delivery:
        notification_id, user_id, due, updated, attempts, state, error = row
        return Delivery(notification_id, user_id, _at(due), from_text(updated), attempts, DeliveryState(state), error)

    @staticmethod
    def _notification(row) -> Notification:
        # The delivery's own columns come first; the notification's id and user are the delivery's.
        return _notification_of(*row[:2], *row[7:])
