"""The embedded profile's storage: one SQLite file for accounts, metrics and the ingest log.

Each thread keeps its own connection (sqlite3 connections must not be shared
across threads); WAL lets readers run while one writer commits, and
synchronous=FULL makes a commit survive a power cut, because a batch is
acknowledged to the device as soon as its commit returns.
"""

from __future__ import annotations

import itertools
import json
import operator
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

from fittrack.core.adapters.codec import decode_batch, decode_notification, encode_batch, encode_notification
from fittrack.core.adapters.futures import fail, resolve, submission_groups
from fittrack.core.adapters.minute_blob import decoded, encoded, ends, merged, minutes_of
from fittrack.core.domain.accounts import Credentials, Profile, Sex, User
from fittrack.core.domain.aggregation import DaySummary, SourceFigures
from fittrack.core.domain.delivery import Delivery, DeliveryState
from fittrack.core.domain.errors import AlreadyExists, NotFound, Unavailable
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading, possible_local_days
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import (
    AccountsUnitOfWork,
    AddressFailureRepository,
    DeliveryRepository,
    EvaluationClaimRepository,
    GoalRepository,
    IdentityRepository,
    LoginFailureRepository,
    MetricStore,
    NotificationPage,
    NotificationQueue,
    NotificationRepository,
    PreferenceRepository,
    PublishOutcome,
    ReadingBus,
    RefreshRecord,
    SessionRepository,
    UserRepository,
)


def _move_minutes_into_day_blobs(conn: sqlite3.Connection) -> None:
    """Schema 5: minute_values (a row per minute) becomes day_minutes (a blob per source and local day).

    Safe to run again: with minute_values gone there is nothing left to move,
    and a day already in day_minutes keeps its own values over the moved ones.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS day_minutes ("
        " user_id TEXT NOT NULL, metric INTEGER NOT NULL, local_date INTEGER NOT NULL, source TEXT NOT NULL,"
        " minutes BLOB NOT NULL, PRIMARY KEY (user_id, metric, local_date, source)) WITHOUT ROWID"
    )
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'minute_values'").fetchone():
        present = {
            tuple(key): blob
            for *key, blob in conn.execute("SELECT user_id, metric, local_date, source, minutes FROM day_minutes")
        }
        rows = conn.execute(
            "SELECT user_id, metric, local_date, source, minute, value FROM minute_values"
            " ORDER BY user_id, metric, local_date, source, minute"
        )

        def moved() -> Iterator[tuple]:
            # Streamed from the cursor: a large database need not fit in memory.
            for key, minutes in itertools.groupby(rows, key=operator.itemgetter(slice(0, 4))):
                values = {minute: value for *_, minute, value in minutes}
                values.update(decoded(present[key]) if key in present else {})
                yield (*key, encoded(values))

        conn.executemany(
            "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes) VALUES (?, ?, ?, ?, ?)",
            moved(),
        )
    conn.execute("DROP INDEX IF EXISTS minute_values_by_day")
    conn.execute("DROP INDEX IF EXISTS minute_values_by_minute")
    conn.execute("DROP TABLE IF EXISTS minute_values")


# Each entry is one schema version: an SQL script, or a function of the connection for
# what SQL alone cannot do; migrate() runs either in one transaction with its version bump.
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    """
    CREATE TABLE users (
        user_id      TEXT PRIMARY KEY,
        username     TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(username) BETWEEN 3 AND 32),
        display_name TEXT NOT NULL DEFAULT '' CHECK (length(display_name) <= 64),
        time_zone    TEXT NOT NULL DEFAULT 'UTC',
        created_at   TEXT NOT NULL
    );
    CREATE TABLE credentials (
        user_id       TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        password_hash BLOB NOT NULL,
        created_at    TEXT NOT NULL,
        expires_at    TEXT
    );
    CREATE TABLE user_metric (
        user_id    TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        height_cm  REAL CHECK (height_cm IS NULL OR height_cm BETWEEN 50 AND 272),
        weight_kg  REAL CHECK (weight_kg IS NULL OR weight_kg BETWEEN 2 AND 650),
        birth_date TEXT,
        stated_age INTEGER CHECK (stated_age IS NULL OR stated_age BETWEEN 1 AND 130),
        sex        INTEGER NOT NULL DEFAULT 0 CHECK (sex BETWEEN 0 AND 3)
    );
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        expires_at TEXT NOT NULL,
        used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
    );
    CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
    CREATE TABLE goals (
        goal_id    TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        metric     INTEGER NOT NULL CHECK (metric BETWEEN 1 AND 4),
        period     INTEGER NOT NULL CHECK (period IN (1, 2)),
        target     REAL NOT NULL CHECK (target > 0),
        active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (user_id, metric, period)
    );
    CREATE TABLE notifications (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        notification_id TEXT NOT NULL UNIQUE,
        user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        kind            INTEGER NOT NULL,
        title           TEXT NOT NULL,
        body            TEXT NOT NULL,
        goal_id         TEXT NOT NULL DEFAULT '',
        created_at      TEXT NOT NULL,
        read            INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
        idempotency_key TEXT NOT NULL,
        UNIQUE (user_id, idempotency_key)
    );
    CREATE INDEX notifications_by_user ON notifications (user_id, seq);
    CREATE TABLE minute_values (
        user_id    TEXT NOT NULL,
        metric     INTEGER NOT NULL,
        source     TEXT NOT NULL,
        minute     INTEGER NOT NULL,
        local_date INTEGER NOT NULL,
        value      REAL NOT NULL CHECK (value >= 0),
        PRIMARY KEY (user_id, metric, source, minute)
    ) WITHOUT ROWID;
    CREATE INDEX minute_values_by_day ON minute_values (user_id, metric, local_date);
    CREATE TABLE daily_values (
        user_id    TEXT NOT NULL,
        metric     INTEGER NOT NULL,
        local_date INTEGER NOT NULL,
        value      REAL NOT NULL,
        min        REAL NOT NULL,
        max        REAL NOT NULL,
        minutes    INTEGER NOT NULL,
        PRIMARY KEY (user_id, metric, local_date)
    ) WITHOUT ROWID;
    CREATE TABLE ingest_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL
    );
    CREATE TABLE device_cursors (
        user_id       TEXT NOT NULL,
        source        TEXT NOT NULL,
        last_sequence INTEGER NOT NULL,
        PRIMARY KEY (user_id, source)
    ) WITHOUT ROWID;
    """,
    # A minute keeps the local day any source first placed it on: looked up by minute across sources.
    """
    CREATE INDEX minute_values_by_minute ON minute_values (user_id, metric, minute);
    """,
    # Which of the 63 sequences below the highest are held too (fittrack.core.domain.sequences).
    """
    ALTER TABLE device_cursors ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    """,
    # Each source's own figures of the day, for ViewMetric's breakdown: [[source, value, minutes], ...].
    """
    ALTER TABLE daily_values ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
    """,
    # One blob per source and local day instead of a row and two index entries per minute: a
    # thirteenth of the space, and a write rewrites a few rows instead of one per reading.
    _move_minutes_into_day_blobs,
    # Notification preferences: per goal, and per user with quiet hours in local time ("HH:MM").
    """
    ALTER TABLE goals ADD COLUMN notify INTEGER NOT NULL DEFAULT 1 CHECK (notify IN (0, 1));
    -- The evaluator walks the users of one time zone at a time, in id order.
    CREATE INDEX users_by_zone ON users (time_zone, user_id);
    CREATE TABLE notification_preferences (
        user_id     TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        quiet_start TEXT,
        quiet_end   TEXT,
        CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
    );
    """,
    # Notification delivery: the outbox the in-process dispatcher drains, each notification's
    # local day (the daily nudge cap counts by it), and pushes with their retries; a push in
    # state 'dead' is a dead letter. due_at is Unix seconds, so that it sorts and compares as a number.
    """
    ALTER TABLE notifications ADD COLUMN local_date TEXT;
    CREATE INDEX notifications_by_day ON notifications (user_id, kind, local_date);
    CREATE TABLE notification_outbox (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL
    );
    CREATE TABLE notification_deliveries (
        notification_id TEXT PRIMARY KEY REFERENCES notifications (notification_id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        due_at          REAL NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
        last_error      TEXT NOT NULL DEFAULT '',
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX notification_deliveries_due ON notification_deliveries (state, due_at);
    CREATE INDEX notification_deliveries_by_user ON notification_deliveries (user_id);
    """,
    # Account security: failed logins per canonical username, existing or not (fittrack/core/domain/throttle.py),
    # and the expiry index the password-expiry notices look up by.
    """
    CREATE TABLE login_failures (
        username     TEXT PRIMARY KEY,
        window_start TEXT NOT NULL,
        count        INTEGER NOT NULL CHECK (count >= 0),
        pauses       INTEGER NOT NULL DEFAULT 0 CHECK (pauses >= 0),
        paused_until TEXT,
        last_failure TEXT
    );
    CREATE INDEX credentials_by_expiry ON credentials (expires_at);
    """,
    # Single sign-on: each (issuer, subject) names one account, and the nonces of accepted ID tokens are kept
    # until those tokens expire (expires_at is Unix seconds), so a replayed one is refused.
    """
    CREATE TABLE sso_identities (
        issuer     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (issuer, subject)
    );
    CREATE INDEX sso_identities_by_user ON sso_identities (user_id);
    CREATE TABLE sso_used_nonces (
        issuer     TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (issuer, nonce)
    );
    CREATE INDEX sso_used_nonces_by_expiry ON sso_used_nonces (expires_at);
    """,
    # Evaluation work claimed by an evaluator (fittrack/core/ports.EvaluationClaimRepository), so several share it.
    """
    CREATE TABLE evaluation_claims (
        work_key    TEXT PRIMARY KEY,
        holder      TEXT NOT NULL,
        lease_until TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX evaluation_claims_unfinished ON evaluation_claims (lease_until) WHERE finished_at IS NULL;
    """,
    # Failed logins per client address (fittrack/core/domain/throttle.AddressPolicy), one row each, kept for a
    # minute: every server process on this file counts them. failed_at is Unix seconds.
    """
    CREATE TABLE address_login_failures (
        address   TEXT NOT NULL,
        failed_at REAL NOT NULL
    );
    CREATE INDEX address_login_failures_by_address ON address_login_failures (address, failed_at);
    CREATE INDEX address_login_failures_by_time ON address_login_failures (failed_at);
    """,
]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SqliteDatabase:
    """Thread-local connections to one SQLite file, plus its migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def migrate(self, target: int | None = None) -> int:
        """Apply the migrations not applied yet, up to version `target` (the latest by default).

        Returns the schema version. Safe to run again.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        last = len(MIGRATIONS) if target is None else target
        for number, step in enumerate(MIGRATIONS[version:last], start=version + 1):
            if callable(step):
                self._run_step(conn, number, step)
            else:
                # executescript commits on its own; the version bump rides in the same script.
                conn.executescript(f"BEGIN; {step}; PRAGMA user_version = {number}; COMMIT;")
        return conn.execute("PRAGMA user_version").fetchone()[0]

    @staticmethod
    def _run_step(conn: sqlite3.Connection, number: int, step: Callable[[sqlite3.Connection], None]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process starting on the same file may have applied it while this one waited for the lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] < number:
                step(conn)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Unavailable(f"the database is busy ({error}); try again") from error
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            # Also after a failed COMMIT (a full disk): a connection left in its
            # transaction would hold the write lock until the process ends.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise Unavailable(f"the database could not store this ({error}); try again") from error
            raise

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


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
                    _iso(user.created_at),
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
        return User(user_id, username, profile, _moment(created))

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
        return Credentials(user_id, bytes(row[0]), _moment(row[1]), _moment(row[2])) if row else None

    def set_credentials(self, credentials: Credentials) -> None:
        self._conn.execute(
            "INSERT INTO credentials (user_id, password_hash, created_at, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (
                credentials.user_id,
                credentials.password_hash,
                _iso(credentials.created_at),
                _iso(credentials.expires_at),
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
            (_iso(start), _iso(end), zone, after, limit),
        )
        return [(user_id, _moment(expires)) for user_id, expires in rows]

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
            (session_id, user_id, _iso(now)),
        )

    def is_active(self, session_id: str) -> bool:
        row = self._conn.execute("SELECT revoked_at FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return row is not None and row[0] is None

    def started_at(self, session_id: str) -> datetime | None:
        row = self._conn.execute("SELECT created_at FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return _moment(row[0]) if row else None

    def revoke(self, session_id: str, now: datetime) -> None:
        self._conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            (_iso(now), session_id),
        )

    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        self._conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND session_id IS NOT ?",
            (_iso(now), user_id, keep),
        )

    def add_refresh(self, record: RefreshRecord) -> None:
        self._conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used) VALUES (?, ?, ?, ?, ?)",
            (record.token_hash, record.session_id, record.user_id, _iso(record.expires_at), int(record.used)),
        )

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        row = self._conn.execute(
            "SELECT session_id, user_id, expires_at, used FROM refresh_tokens WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        return RefreshRecord(token_hash, row[0], row[1], _moment(row[2]), bool(row[3])) if row else None

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
        return LoginFailures(name, _moment(window_start), count, pauses, _moment(paused_until), _moment(last_failure))

    def put(self, failures: LoginFailures) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO login_failures ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                failures.username,
                _iso(failures.window_start),
                failures.count,
                failures.pauses,
                _iso(failures.paused_until),
                _iso(failures.last_failure),
            ),
        )

    def clear(self, username: str) -> None:
        self._conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))

    def forget_before(self, moment: datetime) -> int:
        # ISO texts in UTC, all written by _iso: they sort as the moments do.
        return self._conn.execute("DELETE FROM login_failures WHERE last_failure < ?", (_iso(moment),)).rowcount


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
            (key, holder, _iso(lease_until), _iso(now)),
        )
        return taken.rowcount == 1

    def finish(self, key: str, holder: str, now: datetime) -> None:
        self._conn.execute(
            "UPDATE evaluation_claims SET finished_at = ? WHERE work_key = ? AND holder = ?", (_iso(now), key, holder)
        )

    def abandoned(self, now: datetime, limit: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT work_key FROM evaluation_claims WHERE finished_at IS NULL AND lease_until < ?"
            " ORDER BY lease_until LIMIT ?",
            (_iso(now), limit),
        )
        return [key for (key,) in rows]

    def forget_before(self, moment: datetime) -> int:
        return self._conn.execute("DELETE FROM evaluation_claims WHERE lease_until < ?", (_iso(moment),)).rowcount


class SqliteIdentities(IdentityRepository):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, issuer: str, subject: str) -> ExternalIdentity | None:
        row = self._conn.execute(
            "SELECT user_id, created_at FROM sso_identities WHERE issuer = ? AND subject = ?", (issuer, subject)
        ).fetchone()
        return ExternalIdentity(issuer, subject, row[0], _moment(row[1])) if row else None

    def add(self, identity: ExternalIdentity) -> None:
        try:
            self._conn.execute(
                "INSERT INTO sso_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
                (identity.issuer, identity.subject, identity.user_id, _iso(identity.created_at)),
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
        return [ExternalIdentity(issuer, subject, user_id, _moment(created)) for issuer, subject, created in rows]

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
                    _iso(goal.created_at),
                    _iso(goal.updated_at),
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
            (goal.target, int(goal.active), int(goal.notify), _iso(goal.updated_at), goal.goal_id),
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
            _moment(created),
            _moment(updated),
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
                _iso(notification.created_at),
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
        _moment(created),
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
                _iso(delivery.updated_at),
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
                (delivery.attempts, _seconds(lease_until), _iso(now), delivery.notification_id),
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
                _iso(delivery.updated_at),
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
            [(_seconds(now), _iso(now), i) for i in ids],
        )
        return ids

    @staticmethod
    def _delivery(row) -> Delivery:
        notification_id, user_id, due, updated, attempts, state, error = row
        return Delivery(notification_id, user_id, _at(due), _moment(updated), attempts, DeliveryState(state), error)

    @staticmethod
    def _notification(row) -> Notification:
        # The delivery's own columns come first; the notification's id and user are the delivery's.
        return _notification_of(*row[:2], *row[7:])


class SqliteMetricStore(MetricStore):
    """Minutes in day_minutes, one blob per (user, metric, local day, source); summaries in daily_values.

    A write reads and rewrites the few blobs it touches, in one transaction,
    or in the transaction of the enclosing grouped() block.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._group = threading.local()

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """One transaction for the block, on this thread's connection.

        It holds the database's write lock until the block ends (the ingest
        log's writer waits meanwhile), and the accounts' unit of work shares
        the connection, so open none on this thread inside the block.
        """
        if getattr(self._group, "conn", None) is not None:
            yield
            return
        with self._db.transaction() as conn:
            self._group.conn = conn
            try:
                yield
            finally:
                self._group.conn = None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._group, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._db.transaction() as conn:
            yield conn

    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        fresh = _first_day_last_value(readings)
        if not fresh:
            return set()
        bounds = {key: (min(values), max(values)) for key, values in fresh.items()}
        with self._writing() as conn:
            stored = self._days_around(conn, user_id, bounds)
            rows = []
            for (metric, day), values in _placed(source, fresh, bounds, stored).items():
                blob = merged(stored.get((metric, day), {}).get(source), values)
                rows.append((user_id, metric, day, source, blob))
            conn.executemany(
                "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return {(MetricKind(metric), date.fromordinal(day)) for _, metric, day, _, _ in rows}

    @staticmethod
    def _days_around(
        conn: sqlite3.Connection, user_id: str, bounds: dict[tuple[int, int], tuple[int, int]]
    ) -> dict[tuple[int, int], dict[str, bytes]]:
        """Every source's blobs of each day that can hold one of the minutes (see _possible_days)."""
        days: dict[int, set[int]] = {}
        for (metric, day), (low, high) in bounds.items():
            days.setdefault(metric, set()).update(_possible_days(day, low, high))
        stored: dict[tuple[int, int], dict[str, bytes]] = {}
        for metric, wanted in days.items():
            for first, last in _runs(sorted(wanted)):
                for day, source, blob in conn.execute(
                    "SELECT local_date, source, minutes FROM day_minutes"
                    " WHERE user_id = ? AND metric = ? AND local_date BETWEEN ? AND ?",
                    (user_id, metric, first, last),
                ):
                    stored.setdefault((metric, day), {})[source] = blob
        return stored

    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        rows = self._db.connection().execute(
            "SELECT source, minutes FROM day_minutes WHERE user_id = ? AND metric = ? AND local_date = ?",
            (user_id, int(metric), day.toordinal()),
        )
        return {source: decoded(blob) for source, blob in rows}

    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        with self._writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (user_id, int(metric), s.day.toordinal(), s.value, s.min, s.max, s.minutes, _sources_json(s))
                    for s in summaries
                ],
            )

    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        rows = self._db.connection().execute(
            "SELECT local_date, value, min, max, minutes, sources FROM daily_values"
            " WHERE user_id = ? AND metric = ? AND local_date BETWEEN ? AND ? ORDER BY local_date",
            (user_id, int(metric), start.toordinal(), end.toordinal()),
        )
        return [
            DaySummary(date.fromordinal(day), value, low, high, minutes, _sources_of(sources))
            for day, value, low, high, minutes, sources in rows
        ]

    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        kinds = ",".join(str(int(metric)) for metric in metrics)
        conn = self._db.connection()
        for offset in range(0, len(user_ids), 500):
            chunk = list(user_ids[offset : offset + 500])
            rows = conn.execute(
                "SELECT user_id, metric, local_date, value FROM daily_values"
                f" WHERE user_id IN ({','.join('?' * len(chunk))}) AND metric IN ({kinds})"
                " AND local_date BETWEEN ? AND ?",
                (*chunk, start.toordinal(), end.toordinal()),
            )
            for user_id, metric, day, value in rows:
                found.setdefault(user_id, {}).setdefault(MetricKind(metric), {})[date.fromordinal(day)] = value
        return found

    def delete_user(self, user_id: str) -> None:
        with self._writing() as conn:
            conn.execute("DELETE FROM day_minutes WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM daily_values WHERE user_id = ?", (user_id,))


def _first_day_last_value(readings: Sequence[PlacedReading]) -> dict[tuple[int, int], dict[int, float]]:
    """The readings as (metric, local day ordinal) -> {minute: value}.

    As if they were stored one by one: a repeated minute keeps the day it
    came with first, and its last value.
    """
    by_day: dict[tuple[MetricKind, date], dict[int, float]] = {}
    for reading in readings:
        key = (reading.metric, reading.local_date)
        values = by_day.get(key)
        if values is None:
            values = by_day[key] = {}
        values[reading.minute] = reading.value
    fresh = {(int(metric), day.toordinal()): values for (metric, day), values in by_day.items()}
    days_of = Counter(metric for metric, _ in fresh)
    for metric in [metric for metric, days in days_of.items() if days > 1]:
        # Readings of one metric on several days (a batch across midnight, or a
        # time-zone change): only a minute on two of them needs the slow path.
        groups = [values for (kind, _), values in fresh.items() if kind == metric]
        if sum(map(len, groups)) == len(set().union(*groups)):
            continue
        for key in [key for key in fresh if key[0] == metric]:
            del fresh[key]
        first_day: dict[int, int] = {}
        for reading in readings:
            if reading.metric == metric:
                day = first_day.setdefault(reading.minute, reading.local_date.toordinal())
                fresh.setdefault((metric, day), {})[reading.minute] = reading.value
    return fresh


def _placed(
    source: str,
    fresh: dict[tuple[int, int], dict[int, float]],
    bounds: dict[tuple[int, int], tuple[int, int]],
    stored: dict[tuple[int, int], dict[str, bytes]],
) -> dict[tuple[int, int], dict[int, float]]:
    """`fresh` with each minute already stored on another day moved to that day.

    A minute keeps the local day it was first placed on, by any source: after a
    time-zone change, a resend or another device's copy of it would otherwise
    land on a second day and count twice. Only data from before that rule can
    hold a minute on two days; then, as schema 4's primary key had it, a source
    keeps its own copy where it is, and joins the earliest copy otherwise.
    """
    placed: dict[tuple[int, int], dict[int, float]] = {}
    for (metric, day), values in fresh.items():
        low, high = bounds[(metric, day)]
        earliest: dict[int, int] = {}
        own: dict[int, int] = {}
        for other in sorted(_possible_days(day, low, high) - {day}):
            for holder, blob in stored.get((metric, other), {}).items():
                first, last = ends(blob)
                # Usually that day's minutes all lie before or after these: no need to look closer.
                if last < low or first > high:
                    continue
                for minute in values.keys() & minutes_of(blob):
                    earliest.setdefault(minute, other)
                    if holder == source:
                        own[minute] = other
        moved = _moved(source, day, earliest, own, stored.get((metric, day), {})) if earliest else {}
        if moved:
            values = dict(values)
            for minute, other in moved.items():
                placed.setdefault((metric, other), {})[minute] = values.pop(minute)
        if (metric, day) in placed:
            placed[(metric, day)].update(values)
        elif values:
            placed[(metric, day)] = values
    return placed


def _moved(
    source: str, day: int, earliest: dict[int, int], own: dict[int, int], here: dict[str, bytes]
) -> dict[int, int]:
    """Which of the minutes found on other days leave `day`, and for which day (see _placed)."""
    mine_here = set(minutes_of(here[source])) if source in here else set()
    others_here = set().union(*(minutes_of(blob) for holder, blob in here.items() if holder != source))
    moved = {}
    for minute, other in earliest.items():
        if minute in mine_here:
            continue
        if minute in own:
            moved[minute] = own[minute]
        elif other < day or minute not in others_here:
            moved[minute] = other
    return moved


def _possible_days(day: int, low: int, high: int) -> set[int]:
    """The local days (ordinals) that can hold minutes low..high, which now come with `day`.

    The days those minutes fall on in some time zone: a minute falls on two or
    three, so its earlier day can be two away from `day` (placed at UTC+14,
    resent after a move to UTC-12). Plus the days next to `day`, for minutes
    placed by hand rather than by a time zone.
    """
    return {*possible_local_days(low, high), day - 1, day, day + 1}


def _runs(days: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted days as (first, last) runs of consecutive days."""
    first = previous = days[0]
    for day in days[1:]:
        if day != previous + 1:
            yield first, previous
            first = day
        previous = day
    yield first, previous


def _sources_json(summary: DaySummary) -> str:
    return json.dumps([[f.source, f.value, f.minutes] for f in summary.sources], separators=(",", ":"))


def _sources_of(text: str) -> tuple[SourceFigures, ...]:
    return tuple(SourceFigures(source, value, minutes) for source, value, minutes in json.loads(text))


class SqliteReadingBus(ReadingBus):
    """The embedded stand-in for the `readings` topic: an append-only log table.

    Group commit: one writer thread takes every batch submitted since its last
    commit and stores them in one transaction, so many streams share one
    fsync instead of queueing for one each. `on_published` wakes the
    in-process persister after each commit.
    """

    GROUP_LIMIT = 2_000  # batches per transaction: bounds how long one commit holds the write lock

    def __init__(self, db: SqliteDatabase, on_published: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self.on_published = on_published
        self._queue: queue.SimpleQueue[tuple[Sequence[AcceptedBatch], Future] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        # The in-process persister applies what was just written: it takes the
        # batches from here rather than decoding them back from the log, which
        # is only read after a restart (or when the persister lags far behind).
        self._recent: dict[int, AcceptedBatch] = {}
        self._recent_lock = threading.Lock()

    RECENT_LIMIT = 5_000  # batches kept in memory for the persister; about 50 MB at 100 readings each

    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        future: Future[list[str]] = Future()
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="ingest-log-writer", daemon=True)
                self._writer.start()
        self._queue.put((batches, future))
        return future

    def _write_loop(self) -> None:
        for group in submission_groups(self._queue, self.GROUP_LIMIT):
            try:
                outcomes = self._write([batches for batches, _ in group])
            except Exception as error:  # noqa: BLE001 - every waiting stream must hear of it
                for _, future in group:
                    fail(future, error)
                continue
            for (_, future), result in zip(group, outcomes, strict=True):
                resolve(future, result)
            if any(PublishOutcome.ACCEPTED in result for result in outcomes):
                self.on_published()

    def _write(self, groups: list[Sequence[AcceptedBatch]]) -> list[list[str]]:
        outcomes: list[list[str]] = []
        with self._db.transaction() as conn:
            cursors: dict[tuple[str, str], DeviceCursor] = {}
            log_rows, stored = [], []
            for batches in groups:
                result = []
                for batch in batches:
                    if batch.sequence:
                        key = (batch.user_id, batch.source)
                        cursor = cursors.get(key) or self._load_cursor(conn, *key)
                        if cursor.holds(batch.sequence):
                            result.append(PublishOutcome.DUPLICATE)
                            continue
                        cursors[key] = cursor.with_durable(batch.sequence)
                    log_rows.append((encode_batch(batch),))
                    stored.append(batch)
                    result.append(PublishOutcome.ACCEPTED)
                outcomes.append(result)
            conn.executemany("INSERT INTO ingest_log (payload) VALUES (?)", log_rows)
            # Only this thread inserts, inside its write transaction: the new ids are consecutive.
            (last_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
            conn.executemany(
                "INSERT INTO device_cursors (user_id, source, last_sequence, held) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, source) DO UPDATE"
                " SET last_sequence = excluded.last_sequence, held = excluded.held",
                [(user_id, source, c.highest, c.held) for (user_id, source), c in cursors.items()],
            )
        with self._recent_lock:
            if stored and len(self._recent) + len(stored) <= self.RECENT_LIMIT:
                self._recent.update(zip(range(last_id - len(stored) + 1, last_id + 1), stored, strict=True))
        return outcomes

    @staticmethod
    def _load_cursor(conn: sqlite3.Connection, user_id: str, source: str) -> DeviceCursor:
        row = conn.execute(
            "SELECT last_sequence, held FROM device_cursors WHERE user_id = ? AND source = ?", (user_id, source)
        ).fetchone()
        return DeviceCursor(*row) if row else DeviceCursor()

    def cursor(self, user_id: str, source: str) -> DeviceCursor:
        return self._load_cursor(self._db.connection(), user_id, source)

    def close(self) -> None:
        """Store what was submitted, then stop the writer."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=30)

    def pending(self, limit: int) -> list[tuple[int, AcceptedBatch]]:
        """The oldest batches not yet applied, with their log ids."""
        rows = self._db.connection().execute("SELECT id, payload FROM ingest_log ORDER BY id LIMIT ?", (limit,))
        with self._recent_lock:
            recent = self._recent
            return [(log_id, recent.get(log_id) or decode_batch(payload)) for log_id, payload in rows]

    def acknowledge(self, up_to_id: int) -> None:
        """The persister's offset commit: batches up to this id are applied."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM ingest_log WHERE id <= ?", (up_to_id,))
        with self._recent_lock:
            self._recent = {log_id: batch for log_id, batch in self._recent.items() if log_id > up_to_id}


class SqliteNotificationQueue(NotificationQueue):
    """The embedded stand-in for the `notifications` topic: an outbox table in the SQLite file.

    What is sent is committed before send returns, so a crash loses nothing
    queued; the in-process dispatcher drains it in order and deletes what it
    handled (its offset commit). `on_sent` wakes the dispatcher.
    """

    def __init__(self, db: SqliteDatabase, on_sent: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self.on_sent = on_sent

    def send(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO notification_outbox (payload) VALUES (?)",
                [(encode_notification(n),) for n in notifications],
            )
        self.on_sent()

    def pending(self, limit: int) -> list[tuple[int, Notification]]:
        """The oldest notifications not handled yet, with their outbox ids."""
        rows = self._db.connection().execute(
            "SELECT id, payload FROM notification_outbox ORDER BY id LIMIT ?", (limit,)
        )
        return [(outbox_id, decode_notification(payload)) for outbox_id, payload in rows]

    def acknowledge(self, up_to_id: int) -> None:
        """The dispatcher's offset commit: everything up to this id is handled."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM notification_outbox WHERE id <= ?", (up_to_id,))
