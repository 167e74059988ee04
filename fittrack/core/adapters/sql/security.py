"""Account security in SQLite or PostgreSQL: failed logins, single sign-on identities, evaluation claims."""

from __future__ import annotations

from datetime import datetime

from fittrack.core.adapters.sql.dialect import SqlRepository
from fittrack.core.domain.errors import AlreadyExists
from fittrack.core.domain.oidc import ExternalIdentity
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import (
    AddressFailureRepository,
    EvaluationClaimRepository,
    IdentityRepository,
    LoginFailureRepository,
)


class SqlLoginFailures(SqlRepository, LoginFailureRepository):
    _COLUMNS = "username, window_start, count, pauses, paused_until, last_failure"

    def get(self, username: str) -> LoginFailures | None:
        # Failures on several servers at once read and then write the row: the lock makes each wait
        # for the previous one, so every failure counts. (Two first failures of a name may still race
        # to insert; one of them is then lost.)
        row = self._sql.execute(
            f"SELECT {self._COLUMNS} FROM login_failures WHERE username = %s" + self._sql.for_update, (username,)
        ).fetchone()
        if row is None:
            return None
        name, window_start, count, pauses, paused_until, last_failure = row
        moment = self._d.moment
        return LoginFailures(name, moment(window_start), count, pauses, moment(paused_until), moment(last_failure))

    def put(self, failures: LoginFailures) -> None:
        instant = self._d.instant
        self._sql.execute(
            f"INSERT INTO login_failures ({self._COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (username) DO UPDATE SET window_start = excluded.window_start, count = excluded.count,"
            " pauses = excluded.pauses, paused_until = excluded.paused_until, last_failure = excluded.last_failure",
            (
                failures.username,
                instant(failures.window_start),
                failures.count,
                failures.pauses,
                instant(failures.paused_until),
                instant(failures.last_failure),
            ),
        )

    def clear(self, username: str) -> None:
        self._sql.execute("DELETE FROM login_failures WHERE username = %s", (username,))

    def forget_before(self, moment: datetime) -> int:
        return self._sql.execute(
            "DELETE FROM login_failures WHERE last_failure < %s", (self._d.instant(moment),)
        ).rowcount


class SqlAddressFailures(SqlRepository, AddressFailureRepository):
    """One row per failure, no locks: concurrent failures each insert their own row, so all of them count.

    failed_at is Unix seconds in SQLite (dialect.seconds), so that it sorts and compares as a number.
    """

    def recent(self, address: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        rows = self._sql.execute(
            "SELECT failed_at FROM address_login_failures WHERE address = %s AND failed_at > %s AND failed_at <= %s"
            " ORDER BY failed_at DESC LIMIT %s",
            (address, self._d.seconds(start), self._d.seconds(end), limit),
        ).fetchall()
        return [self._d.from_seconds(row[0]) for row in rows]

    def add(self, address: str, moment: datetime, forget_before: datetime) -> None:
        expired = "DELETE FROM address_login_failures WHERE address = %s AND failed_at < %s"
        insert = "INSERT INTO address_login_failures (address, failed_at) VALUES (%s, %s)"
        args = (address, self._d.seconds(forget_before), address, self._d.seconds(moment))
        if self._d.writable_ctes:
            # One round trip: the address's expired rows go in the statement that records the new one.
            self._sql.execute(f"WITH expired AS ({expired}) {insert}", args)
        else:  # SQLite has no DELETE inside WITH; it is in-process, so the second statement costs no round trip
            self._sql.execute(expired, args[:2])
            self._sql.execute(insert, args[2:])

    def forget_before(self, moment: datetime) -> int:
        return self._sql.execute(
            "DELETE FROM address_login_failures WHERE failed_at < %s", (self._d.seconds(moment),)
        ).rowcount


class SqlEvaluationClaims(SqlRepository, EvaluationClaimRepository):
    def claim(self, key: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        # Two evaluators claiming at once: the second waits on the first's row lock (or, in SQLite, for
        # the write lock), then finds the row held by another lease and updates nothing.
        taken = self._sql.execute(
            "INSERT INTO evaluation_claims (work_key, holder, lease_until) VALUES (%s, %s, %s)"
            " ON CONFLICT (work_key) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until"
            " WHERE evaluation_claims.finished_at IS NULL"
            " AND (evaluation_claims.holder = excluded.holder OR evaluation_claims.lease_until < %s)",
            (key, holder, self._d.instant(lease_until), self._d.instant(now)),
        )
        return taken.rowcount == 1

    def finish(self, key: str, holder: str, now: datetime) -> None:
        self._sql.execute(
            "UPDATE evaluation_claims SET finished_at = %s WHERE work_key = %s AND holder = %s",
            (self._d.instant(now), key, holder),
        )

    def abandoned(self, now: datetime, limit: int) -> list[str]:
        rows = self._sql.execute(
            "SELECT work_key FROM evaluation_claims WHERE finished_at IS NULL AND lease_until < %s"
            " ORDER BY lease_until LIMIT %s",
            (self._d.instant(now), limit),
        )
        return [key for (key,) in rows.fetchall()]

    def forget_before(self, moment: datetime) -> int:
        return self._sql.execute(
            "DELETE FROM evaluation_claims WHERE lease_until < %s", (self._d.instant(moment),)
        ).rowcount


class SqlIdentities(SqlRepository, IdentityRepository):
    def get(self, issuer: str, subject: str) -> ExternalIdentity | None:
        row = self._sql.execute(
            "SELECT user_id, created_at FROM sso_identities WHERE issuer = %s AND subject = %s", (issuer, subject)
        ).fetchone()
        return ExternalIdentity(issuer, subject, row[0], self._d.moment(row[1])) if row else None

    def add(self, identity: ExternalIdentity) -> None:
        self._hold_account(identity.user_id)
        cursor = self._sql.execute(
            "INSERT INTO sso_identities (issuer, subject, user_id, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (identity.issuer, identity.subject, identity.user_id, self._d.instant(identity.created_at)),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists("this provider login is linked to an account already")

    def for_user(self, user_id: str) -> list[ExternalIdentity]:
        rows = self._sql.execute(
            "SELECT issuer, subject, created_at FROM sso_identities WHERE user_id = %s"
            " ORDER BY created_at, issuer, subject",
            (user_id,),
        )
        moment = self._d.moment
        return [ExternalIdentity(issuer, subject, user_id, moment(created)) for issuer, subject, created in rows]

    def use_nonce(self, issuer: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        # expires_at is Unix seconds in SQLite (dialect.seconds).
        self._sql.execute("DELETE FROM sso_used_nonces WHERE expires_at <= %s", (self._d.seconds(now),))
        # Two servers given the same token at once: the primary key lets exactly one insert win.
        cursor = self._sql.execute(
            "INSERT INTO sso_used_nonces (issuer, nonce, expires_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (issuer, nonce, self._d.seconds(expires_at)),
        )
        return cursor.rowcount == 1
