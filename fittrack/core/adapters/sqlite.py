"""The embedded profile's database: one SQLite file for accounts, metrics, the ingest log and the outbox.

The repositories and stores over it are in sqlite_accounts, sqlite_metrics, sqlite_ingest and sqlite_outbox.

Each thread keeps its own connection (sqlite3 connections must not be shared
across threads); WAL lets readers run while one writer commits, and
synchronous=FULL makes a commit survive a power cut, because a batch is
acknowledged to the device as soon as its commit returns.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from fittrack.core.adapters.minute_blob import decoded, encoded
from fittrack.core.adapters.sqlite_metrics import keep_each_minute_on_one_day
from fittrack.core.domain.errors import Unavailable


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
    # A minute counts on one day: one that two sources left on two days moves to the earlier one.
    keep_each_minute_on_one_day,
]


def to_text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def from_text(text: str | None) -> datetime | None:
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
