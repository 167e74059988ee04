"""Users, their credentials and sessions, in SQLite or PostgreSQL (fittrack.core.adapters.sql.dialect)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fittrack.core.adapters.sql.dialect import SqlRepository
from fittrack.core.domain.accounts import Credentials, Profile, Sex, User
from fittrack.core.domain.errors import AlreadyExists
from fittrack.core.ports import RefreshRecord, SessionRepository, UserRepository


class SqlUsers(SqlRepository, UserRepository):
    def add(self, user: User, credentials: Credentials | None) -> None:
        # ON CONFLICT DO NOTHING rather than a caught IntegrityError: a failed INSERT aborts a whole
        # PostgreSQL transaction. The username is canonical (normalize_username) and its uniqueness
        # case-insensitive in both schemas, so a differently cased name collides here too.
        cursor = self._sql.execute(
            "INSERT INTO users (user_id, username, display_name, time_zone, created_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                user.user_id,
                user.username.lower(),
                user.profile.display_name,
                user.profile.time_zone,
                self._d.instant(user.created_at),
            ),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists(f"username {user.username!r} is taken; choose another")
        profile = user.profile
        self._sql.execute(
            "INSERT INTO user_metric (user_id, height_cm, weight_kg, birth_date, stated_age, sex)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                user.user_id,
                profile.height_cm,
                profile.weight_kg,
                self._d.day(profile.birth_date),
                profile.stated_age,
                int(profile.sex),
            ),
        )
        if credentials is not None:  # an account made by single sign-on has no password
            self.set_credentials(credentials)

    _SELECT = """
        SELECT u.user_id, u.username, u.display_name, u.time_zone, u.created_at,
               m.height_cm, m.weight_kg, m.birth_date, m.stated_age, m.sex
        FROM users u JOIN user_metric m USING (user_id)
    """

    def get(self, user_id: str) -> User | None:
        return self._user(self._sql.execute(self._SELECT + " WHERE u.user_id = %s", (user_id,)).fetchone())

    def get_by_username(self, username: str) -> User | None:
        match = f"{self._d.nocase('u.username')} = {self._d.nocase('%s')}"
        return self._user(self._sql.execute(f"{self._SELECT} WHERE {match}", (username,)).fetchone())

    def _user(self, row) -> User | None:
        if row is None:
            return None
        user_id, username, display_name, zone, created, height, weight, birth, age, sex = row
        profile = Profile(
            display_name=display_name,
            height_cm=height,
            weight_kg=weight,
            birth_date=self._d.from_day(birth),
            stated_age=age,
            sex=Sex(sex),
            time_zone=zone,
        )
        return User(user_id, username, profile, self._d.moment(created))

    def update_profile(self, user_id: str, profile: Profile) -> None:
        self._sql.execute(
            "UPDATE users SET display_name = %s, time_zone = %s WHERE user_id = %s",
            (profile.display_name, profile.time_zone, user_id),
        )
        self._sql.execute(
            "UPDATE user_metric SET height_cm = %s, weight_kg = %s, birth_date = %s, stated_age = %s, sex = %s"
            " WHERE user_id = %s",
            (
                profile.height_cm,
                profile.weight_kg,
                self._d.day(profile.birth_date),
                profile.stated_age,
                int(profile.sex),
                user_id,
            ),
        )

    def get_credentials(self, user_id: str) -> Credentials | None:
        row = self._sql.execute(
            "SELECT password_hash, created_at, expires_at FROM credentials WHERE user_id = %s", (user_id,)
        ).fetchone()
        return Credentials(user_id, bytes(row[0]), self._d.moment(row[1]), self._d.moment(row[2])) if row else None

    def set_credentials(self, credentials: Credentials) -> None:
        self._sql.execute(
            "INSERT INTO credentials (user_id, password_hash, created_at, expires_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (
                credentials.user_id,
                bytes(credentials.password_hash),
                self._d.instant(credentials.created_at),
                self._d.instant(credentials.expires_at),
            ),
        )

    def delete(self, user_id: str) -> None:
        # Everything else goes by ON DELETE CASCADE; device cursors have no foreign key.
        self._sql.execute("DELETE FROM device_cursors WHERE user_id = %s", (user_id,))
        self._sql.execute("DELETE FROM users WHERE user_id = %s", (user_id,))

    def time_zones(self) -> list[str]:
        return [zone for (zone,) in self._sql.execute("SELECT DISTINCT time_zone FROM users ORDER BY time_zone")]

    def ids_in_zone(self, zone: str, after: str, limit: int) -> list[str]:
        rows = self._sql.execute(
            "SELECT user_id FROM users WHERE time_zone = %s AND user_id > %s ORDER BY user_id LIMIT %s",
            (zone, after, limit),
        )
        return [user_id for (user_id,) in rows]

    def expiring_in_zone(
        self, zone: str, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        rows = self._sql.execute(
            "SELECT u.user_id, c.expires_at FROM credentials c JOIN users u USING (user_id)"
            " WHERE c.expires_at >= %s AND c.expires_at < %s AND u.time_zone = %s AND u.user_id > %s"
            " ORDER BY u.user_id LIMIT %s",
            (self._d.instant(start), self._d.instant(end), zone, after, limit),
        )
        return [(user_id, self._d.moment(expires)) for user_id, expires in rows]

    def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        rows = self._sql.rows_in(f"{self._SELECT} WHERE", "u.user_id", user_ids)
        return {user.user_id: user for user in map(self._user, rows)}


class SqlSessions(SqlRepository, SessionRepository):
    def create(self, session_id: str, user_id: str, now: datetime) -> None:
        self._hold_account(user_id)
        self._sql.execute(
            "INSERT INTO sessions (session_id, user_id, created_at) VALUES (%s, %s, %s)",
            (session_id, user_id, self._d.instant(now)),
        )

    def is_active(self, session_id: str) -> bool:
        row = self._sql.execute("SELECT revoked_at FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        return row is not None and row[0] is None

    def started_at(self, session_id: str) -> datetime | None:
        row = self._sql.execute("SELECT created_at FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        return self._d.moment(row[0]) if row else None

    def revoke(self, session_id: str, now: datetime) -> None:
        self._sql.execute(
            "UPDATE sessions SET revoked_at = %s WHERE session_id = %s AND revoked_at IS NULL",
            (self._d.instant(now), session_id),
        )

    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        self._sql.execute(
            "UPDATE sessions SET revoked_at = %s"
            " WHERE user_id = %s AND revoked_at IS NULL AND session_id IS DISTINCT FROM %s",
            (self._d.instant(now), user_id, keep),
        )

    def add_refresh(self, record: RefreshRecord) -> None:
        self._sql.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used)"
            " VALUES (%s, %s, %s, %s, %s)",
            (record.token_hash, record.session_id, record.user_id, self._d.instant(record.expires_at), record.used),
        )

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        # A refresh reads `used` and then sets it: where writers run side by side, the row lock makes a
        # second, concurrent refresh with the same token wait and then see it used.
        row = self._sql.execute(
            "SELECT session_id, user_id, expires_at, used FROM refresh_tokens WHERE token_hash = %s"
            + self._sql.for_update,
            (token_hash,),
        ).fetchone()
        return RefreshRecord(token_hash, row[0], row[1], self._d.moment(row[2]), bool(row[3])) if row else None

    def mark_refresh_used(self, token_hash: str) -> None:
        self._sql.execute("UPDATE refresh_tokens SET used = true WHERE token_hash = %s", (token_hash,))
