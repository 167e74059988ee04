"""The production profile's account database: PostgreSQL, through pooled psycopg2 connections.

Semantics follow the embedded adapter (fittrack/core/adapters/sqlite_accounts.py) so the services
behave the same on both. Where the two engines differ:

- SQLite runs one writer at a time (BEGIN IMMEDIATE); PostgreSQL runs writers
  side by side at READ COMMITTED, so reads that decide a write (a refresh
  token's `used` flag, the unread state of notifications) lock their rows.
- A failed INSERT aborts a whole PostgreSQL transaction, but only the statement
  in SQLite; inserts that may collide use ON CONFLICT DO NOTHING instead, so a
  unit of work stays usable after AlreadyExists, as with SQLite.
- Every lost or refused connection becomes Unavailable, and the connection is
  thrown away rather than pooled, so the adapter heals once the server is back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2.pool import PoolError, ThreadedConnectionPool

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

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations") / "postgres"
UNAVAILABLE = "the account database is unavailable; try again"
# Any constant works as long as every Fittrack process uses the same one.
_MIGRATION_LOCK = 0x6669_7474_7261_636B  # "fittrack"
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# After a failed connect, reads that may use the replica go there for this long without trying the primary;
# so do they while another connect has been waiting this long (a healthy server answers in milliseconds).
OUT_SECONDS = 5.0
SLOW_CONNECT_SECONDS = 0.5
_MIGRATION_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def describe_dsn(dsn: str) -> str:
    """user@host:port/dbname, for logs: never the password."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<malformed DSN>"
    user = params.get("user", "")
    where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}/{params.get('dbname', '')}"
    return f"{user}@{where}" if user else where


class Busy(Unavailable):
    """Every connection of a pool is in use: the server is up, only loaded."""


class _Pool(ThreadedConnectionPool):
    """A ThreadedConnectionPool that starts empty, keeps what it lends and never blocks on a connect.

    psycopg2's pool connects `minconn` connections up front (so a server that is
    down at start would stop ours from starting) and closes every returned
    connection beyond `minconn` (so minconn=0 would pool nothing). It also
    connects while holding its lock, so one unreachable host would queue every
    other thread behind a connect timeout. This subclass fixes the three; the
    semaphore bounds the connections instead of PoolError("exhausted").
    """

    def __init__(self, dsn: str, maxconn: int, wait_seconds: float, **connect_kwargs) -> None:
        super().__init__(0, maxconn, dsn, **connect_kwargs)
        self.minconn = maxconn
        self.description = describe_dsn(dsn)
        self._slots = threading.BoundedSemaphore(maxconn)
        self._wait_seconds = wait_seconds
        self._out_until = 0.0  # monotonic; while ahead, a connect failed just now
        self._connecting: list[float] = []  # when each connect under way began

    @property
    def out(self) -> bool:
        """Whether a connect failed in the last OUT_SECONDS, or one has been waiting for SLOW_CONNECT_SECONDS:
        readers that may go elsewhere need not wait for the server too."""
        now = time.monotonic()
        with self._lock:
            slow = bool(self._connecting) and now - min(self._connecting) > SLOW_CONNECT_SECONDS
        return slow or now < self._out_until

    def acquire(self) -> psycopg2.extensions.connection:
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise Busy(f"the account database is busy (all {self.maxconn} connections in use); try again")
        try:
            return self._take()
        except BaseException:
            self._slots.release()
            raise

    def _take(self) -> psycopg2.extensions.connection:
        with self._lock:
            if self.closed:
                raise Unavailable(UNAVAILABLE)
            if self._pool:
                return self._lend(self._pool.pop())
        started = time.monotonic()
        with self._lock:
            self._connecting.append(started)
        try:
            conn = psycopg2.connect(*self._args, **self._kwargs)
        except _CONNECTION_ERRORS as error:
            self._out_until = time.monotonic() + OUT_SECONDS
            log.warning("cannot connect to PostgreSQL at %s: %s", self.description, str(error).strip())
            raise Unavailable(UNAVAILABLE) from error
        finally:
            with self._lock:
                self._connecting.remove(started)
        self._out_until = 0.0
        with self._lock:
            if self.closed:
                conn.close()
                raise Unavailable(UNAVAILABLE)
            return self._lend(conn)

    def _lend(self, conn: psycopg2.extensions.connection) -> psycopg2.extensions.connection:
        key = self._getkey()
        self._used[key] = conn
        self._rused[id(conn)] = key
        return conn

    def release(self, conn: psycopg2.extensions.connection, broken: bool) -> None:
        try:
            self.putconn(conn, close=broken or bool(conn.closed))
        except PoolError:
            # Closed while the connection was out: closeall() has closed it already.
            pass
        finally:
            self._slots.release()


class PostgresDatabase:
    """Connection pools to the primary and to a read replica (the primary again when there is none)."""

    def __init__(
        self,
        primary_dsn: str,
        replica_dsn: str = "",
        pool_max: int = 20,
        connect_timeout: int = 3,
        wait_seconds: float = 5.0,
    ) -> None:
        if pool_max < 1:
            raise ValueError("pool_max must be at least 1")
        for dsn in (primary_dsn, replica_dsn):
            try:
                psycopg2.extensions.parse_dsn(dsn)
            except psycopg2.ProgrammingError:
                # The parser's message quotes the DSN, password included.
                raise ValueError("the PostgreSQL DSN is malformed") from None
        connect_kwargs = {
            "connect_timeout": connect_timeout,
            "application_name": "fittrack",
            # Timestamps come back in UTC, as the SQLite adapter returns them.
            "options": "-c TimeZone=UTC",
            # A peer that vanished without closing the socket is noticed in ~1 min instead of ~2 h.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        self.primary = _Pool(primary_dsn, pool_max, wait_seconds, **connect_kwargs)
        self.replica = _Pool(replica_dsn or primary_dsn, pool_max, wait_seconds, **connect_kwargs)
        self.has_replica = bool(replica_dsn) and replica_dsn != primary_dsn

    def __repr__(self) -> str:
        return f"PostgresDatabase(primary={self.primary.description!r}, replica={self.replica.description!r})"

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[_Transaction]:
        """One transaction, committed when the block ends normally and rolled back otherwise."""
        tx = _Transaction(self.replica if read_only else self.primary, read_only)
        try:
            yield tx
            tx.commit()
        finally:
            tx.close()

    def migrate(self) -> int:
        """Apply the migrations not applied yet, each once; returns the schema version. Safe to run again."""
        migrations = _migrations()
        with self.transaction() as tx:
            # Two processes migrating at once take turns here: the second then
            # finds everything applied instead of failing on CREATE TABLE.
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in tx.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, path in migrations:
                if version not in applied:
                    log.info("applying PostgreSQL migration %s", path.name)
                    tx.execute(path.read_text(encoding="utf-8"))
                    tx.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    applied.add(version)
        return max(applied, default=0)

    def close(self) -> None:
        for pool in (self.primary, self.replica):
            if not pool.closed:
                pool.closeall()

    def reachable(self) -> bool:
        """Whether the primary takes a connection and answers a query now, for the health service.

        On a connection of its own: a pool lent out in full under load is busy, not down.
        """
        try:
            conn = psycopg2.connect(*self.primary._args, **{**self.primary._kwargs, "connect_timeout": 2})
        except _CONNECTION_ERRORS:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except psycopg2.Error:
            return False
        finally:
            conn.close()


def _migrations() -> list[tuple[int, Path]]:
    found: dict[int, Path] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_FILE.fullmatch(path.name)
        if match is None:
            raise RuntimeError(f"migration {path.name} is not named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"migrations {found[version].name} and {path.name} share version {version}")
        found[version] = path
    return sorted(found.items())


class _Transaction:
    """One pooled connection for the span of a transaction; a lost connection is Unavailable and never pooled.

    `fallback` is a second pool (the replica) for a read-only transaction that
    prefers the primary: while the primary is out (a failover under way), it
    reads there instead of failing.
    """

    def __init__(self, pool: _Pool, read_only: bool, fallback: _Pool | None = None) -> None:
        self._pool = pool
        self.read_only = read_only
        self._fallback = fallback
        self._conn: psycopg2.extensions.connection | None = self._acquire()
        # Until a statement succeeds, nothing of this transaction exists on the
        # server, so a pooled connection found dead can be swapped for another.
        self._pristine = True
        if read_only:
            self.execute("SET TRANSACTION READ ONLY")

    def _acquire(self) -> psycopg2.extensions.connection:
        try:
            if self._fallback is not None and self._pool.out:
                # Each attempt on a vanished primary can wait out the connect timeout: others just did.
                raise Unavailable(UNAVAILABLE)
            return self._pool.acquire()
        except Busy:
            raise  # the primary is up: a lookup waits its turn there rather than read what may lag
        except Unavailable:
            if self._fallback is None:
                raise
            log.debug("PostgreSQL at %s is out; reading from %s", self._pool.description, self._fallback.description)
            self._pool, self._fallback = self._fallback, None
            return self._pool.acquire()

    def execute(self, sql: str, args: Sequence | None = None) -> psycopg2.extensions.cursor:
        attempts = 0
        while True:
            if self._conn is None:
                raise Unavailable(UNAVAILABLE)
            cursor = self._conn.cursor()
            try:
                cursor.execute(sql, args)
            except _CONNECTION_ERRORS as error:
                lost = bool(self._conn.closed)
                self._discard(error)
                # After a restart of the server every idle pooled connection is
                # dead; each fails at once, and at worst the pool is emptied.
                if self._pristine and lost and attempts < self._pool.maxconn:
                    attempts += 1
                    self._conn = self._acquire()
                    continue
                raise Unavailable(UNAVAILABLE) from error
            self._pristine = False
            return cursor

    def commit(self) -> None:
        if self._conn is None:
            raise Unavailable(UNAVAILABLE)
        try:
            self._conn.commit()
        except _CONNECTION_ERRORS as error:
            self._discard(error)
            raise Unavailable(UNAVAILABLE) from error

    def rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except _CONNECTION_ERRORS as error:
            # The server rolls back what a dead session left open; nothing to undo here.
            self._discard(error)

    def close(self) -> None:
        """Roll back whatever was not committed and give the connection back."""
        self.rollback()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool.release(conn, broken=False)

    def _discard(self, error: Exception) -> None:
        log.warning("PostgreSQL connection to %s lost: %s", self._pool.description, str(error).strip())
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, broken=True)


class PostgresUnitOfWork(AccountsUnitOfWork):
    """Account changes in one PostgreSQL transaction: rolled back unless committed.

    read_only=True runs on the replica pool in a READ ONLY transaction; it may
    lag the primary slightly, so use it only where a read need not see the
    caller's own latest write.

    lookup=True is a READ ONLY transaction on the primary, or on the replica
    while the primary cannot be reached: session checks and time-zone lookups,
    which must see the latest logout but should not stop every call while
    Patroni fails over. On the replica they lag by its replay delay (synchronous
    replication: milliseconds), and only during the outage.
    """

    def __init__(self, db: PostgresDatabase, read_only: bool = False, lookup: bool = False) -> None:
        self._db = db
        self._read_only = read_only or lookup
        self._lookup = lookup
        self._tx: _Transaction | None = None

    def __enter__(self) -> PostgresUnitOfWork:
        if self._lookup:
            self._tx = _Transaction(self._db.primary, True, self._db.replica if self._db.has_replica else None)
        else:
            self._tx = _Transaction(self._db.replica if self._read_only else self._db.primary, self._read_only)
        self.users = PostgresUsers(self._tx)
        self.sessions = PostgresSessions(self._tx)
        self.goals = PostgresGoals(self._tx)
        self.notifications = PostgresNotifications(self._tx)
        self.preferences = PostgresPreferences(self._tx)
        self.deliveries = PostgresDeliveries(self._tx)
        self.login_failures = PostgresLoginFailures(self._tx)
        self.address_failures = PostgresAddressFailures(self._tx)
        self.identities = PostgresIdentities(self._tx)
        self.evaluation_claims = PostgresEvaluationClaims(self._tx)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            tx.close()

    def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("commit outside the unit of work's `with` block")
        self._tx.commit()

    def rollback(self) -> None:
        if self._tx is not None:
            self._tx.rollback()


class PostgresUsers(UserRepository):
    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def add(self, user: User, credentials: Credentials | None) -> None:
        # The schema keeps usernames canonical; lower-casing here makes a
        # differently cased name collide (AlreadyExists) as it does in SQLite's
        # NOCASE column instead of failing the CHECK.
        cursor = self._tx.execute(
            "INSERT INTO users (user_id, username, display_name, time_zone, created_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                user.user_id,
                user.username.lower(),
                user.profile.display_name,
                user.profile.time_zone,
                _utc(user.created_at),
            ),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists(f"username {user.username!r} is taken; choose another")
        profile = user.profile
        self._tx.execute(
            "INSERT INTO user_metric (user_id, height_cm, weight_kg, birth_date, stated_age, sex)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                user.user_id,
                profile.height_cm,
                profile.weight_kg,
                profile.birth_date,
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
        return self._user(self._tx.execute(self._SELECT + " WHERE u.user_id = %s", (user_id,)).fetchone())

    def get_by_username(self, username: str) -> User | None:
        # lower() on both sides matches the unique index on lower(username).
        row = self._tx.execute(self._SELECT + " WHERE lower(u.username) = lower(%s)", (username,)).fetchone()
        return self._user(row)

    @staticmethod
    def _user(row) -> User | None:
        if row is None:
            return None
        user_id, username, display_name, zone, created, height, weight, birth, age, sex = row
        profile = Profile(
            display_name=display_name,
            height_cm=height,
            weight_kg=weight,
            birth_date=birth,
            stated_age=age,
            sex=Sex(sex),
            time_zone=zone,
        )
        return User(user_id, username, profile, _utc(created))

    def update_profile(self, user_id: str, profile: Profile) -> None:
        self._tx.execute(
            "UPDATE users SET display_name = %s, time_zone = %s WHERE user_id = %s;"
            " UPDATE user_metric SET height_cm = %s, weight_kg = %s, birth_date = %s, stated_age = %s, sex = %s"
            " WHERE user_id = %s",
            (
                profile.display_name,
                profile.time_zone,
                user_id,
                profile.height_cm,
                profile.weight_kg,
                profile.birth_date,
                profile.stated_age,
                int(profile.sex),
                user_id,
            ),
        )

    def get_credentials(self, user_id: str) -> Credentials | None:
        row = self._tx.execute(
            "SELECT password_hash, created_at, expires_at FROM credentials WHERE user_id = %s", (user_id,)
        ).fetchone()
        return Credentials(user_id, bytes(row[0]), _utc(row[1]), _utc(row[2])) if row else None

    def set_credentials(self, credentials: Credentials) -> None:
        self._tx.execute(
            "INSERT INTO credentials (user_id, password_hash, created_at, expires_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (
                credentials.user_id,
                psycopg2.Binary(credentials.password_hash),
                _utc(credentials.created_at),
                _utc(credentials.expires_at),
            ),
        )

    def delete(self, user_id: str) -> None:
        # Everything else goes by ON DELETE CASCADE; device cursors have no foreign key.
        self._tx.execute(
            "DELETE FROM device_cursors WHERE user_id = %s; DELETE FROM users WHERE user_id = %s", (user_id, user_id)
        )

    def time_zones(self) -> list[str]:
        return [zone for (zone,) in self._tx.execute("SELECT DISTINCT time_zone FROM users ORDER BY time_zone")]

    def ids_in_zone(self, zone: str, after: str, limit: int) -> list[str]:
        rows = self._tx.execute(
            "SELECT user_id FROM users WHERE time_zone = %s AND user_id > %s ORDER BY user_id LIMIT %s",
            (zone, after, limit),
        )
        return [user_id for (user_id,) in rows]

    def expiring_in_zone(
        self, zone: str, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        rows = self._tx.execute(
            "SELECT u.user_id, c.expires_at FROM credentials c JOIN users u USING (user_id)"
            " WHERE c.expires_at >= %s AND c.expires_at < %s AND u.time_zone = %s AND u.user_id > %s"
            " ORDER BY u.user_id LIMIT %s",
            (_utc(start), _utc(end), zone, after, limit),
        )
        return [(user_id, _utc(expires)) for user_id, expires in rows]

    def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        if not user_ids:
            return {}
        rows = self._tx.execute(self._SELECT + " WHERE u.user_id = ANY(%s::text[])", (list(user_ids),)).fetchall()
        return {user.user_id: user for user in map(self._user, rows)}


class PostgresSessions(SessionRepository):
    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def create(self, session_id: str, user_id: str, now: datetime) -> None:
        self._tx.execute(
            "INSERT INTO sessions (session_id, user_id, created_at) VALUES (%s, %s, %s)",
            (session_id, user_id, _utc(now)),
        )

    def is_active(self, session_id: str) -> bool:
        row = self._tx.execute("SELECT revoked_at FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        return row is not None and row[0] is None

    def started_at(self, session_id: str) -> datetime | None:
        row = self._tx.execute("SELECT created_at FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        return _utc(row[0]) if row else None

    def revoke(self, session_id: str, now: datetime) -> None:
        self._tx.execute(
            "UPDATE sessions SET revoked_at = %s WHERE session_id = %s AND revoked_at IS NULL",
            (_utc(now), session_id),
        )

    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        self._tx.execute(
            "UPDATE sessions SET revoked_at = %s"
            " WHERE user_id = %s AND revoked_at IS NULL AND session_id IS DISTINCT FROM %s",
            (_utc(now), user_id, keep),
        )

    def add_refresh(self, record: RefreshRecord) -> None:
        self._tx.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used)"
            " VALUES (%s, %s, %s, %s, %s)",
            (record.token_hash, record.session_id, record.user_id, _utc(record.expires_at), record.used),
        )

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        sql = "SELECT session_id, user_id, expires_at, used FROM refresh_tokens WHERE token_hash = %s"
        # A refresh reads `used` and then sets it: the row lock makes a second,
        # concurrent refresh with the same token wait and then see it used, as
        # SQLite's single writer would.
        if not self._tx.read_only:
            sql += " FOR UPDATE"
        row = self._tx.execute(sql, (token_hash,)).fetchone()
        return RefreshRecord(token_hash, row[0], row[1], _utc(row[2]), row[3]) if row else None

    def mark_refresh_used(self, token_hash: str) -> None:
        self._tx.execute("UPDATE refresh_tokens SET used = true WHERE token_hash = %s", (token_hash,))


class PostgresLoginFailures(LoginFailureRepository):
    _COLUMNS = "username, window_start, count, pauses, paused_until, last_failure"

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def get(self, username: str) -> LoginFailures | None:
        sql = f"SELECT {self._COLUMNS} FROM login_failures WHERE username = %s"
        # Failures on several servers at once read and then write the row: the lock
        # makes each wait for the previous one, so every failure counts. (Two first
        # failures of a name may still race to insert; one of them is then lost.)
        if not self._tx.read_only:
            sql += " FOR UPDATE"
        row = self._tx.execute(sql, (username,)).fetchone()
        if row is None:
            return None
        name, window_start, count, pauses, paused_until, last_failure = row
        return LoginFailures(name, _utc(window_start), count, pauses, _utc(paused_until), _utc(last_failure))

    def put(self, failures: LoginFailures) -> None:
        self._tx.execute(
            f"INSERT INTO login_failures ({self._COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (username) DO UPDATE SET window_start = excluded.window_start, count = excluded.count,"
            " pauses = excluded.pauses, paused_until = excluded.paused_until, last_failure = excluded.last_failure",
            (
                failures.username,
                _utc(failures.window_start),
                failures.count,
                failures.pauses,
                _utc(failures.paused_until),
                _utc(failures.last_failure),
            ),
        )

    def clear(self, username: str) -> None:
        self._tx.execute("DELETE FROM login_failures WHERE username = %s", (username,))

    def forget_before(self, moment: datetime) -> int:
        return self._tx.execute("DELETE FROM login_failures WHERE last_failure < %s", (_utc(moment),)).rowcount


class PostgresAddressFailures(AddressFailureRepository):
    """One row per failure, no locks: concurrent failures each insert their own row, so all of them count."""

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def recent(self, address: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        rows = self._tx.execute(
            "SELECT failed_at FROM address_login_failures WHERE address = %s AND failed_at > %s AND failed_at <= %s"
            " ORDER BY failed_at DESC LIMIT %s",
            (address, _utc(start), _utc(end), limit),
        ).fetchall()
        return [_utc(row[0]) for row in rows]

    def add(self, address: str, moment: datetime, forget_before: datetime) -> None:
        # One round trip: the address's expired rows go in the statement that records the new one.
        self._tx.execute(
            "WITH expired AS (DELETE FROM address_login_failures WHERE address = %s AND failed_at < %s)"
            " INSERT INTO address_login_failures (address, failed_at) VALUES (%s, %s)",
            (address, _utc(forget_before), address, _utc(moment)),
        )

    def forget_before(self, moment: datetime) -> int:
        return self._tx.execute("DELETE FROM address_login_failures WHERE failed_at < %s", (_utc(moment),)).rowcount


class PostgresEvaluationClaims(EvaluationClaimRepository):
    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def claim(self, key: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        # Two evaluators claiming at once: the second waits on the first's row lock, then
        # finds the row held by another lease and updates nothing.
        taken = self._tx.execute(
            "INSERT INTO evaluation_claims (work_key, holder, lease_until) VALUES (%s, %s, %s)"
            " ON CONFLICT (work_key) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until"
            " WHERE evaluation_claims.finished_at IS NULL"
            " AND (evaluation_claims.holder = excluded.holder OR evaluation_claims.lease_until < %s)",
            (key, holder, _utc(lease_until), _utc(now)),
        )
        return taken.rowcount == 1

    def finish(self, key: str, holder: str, now: datetime) -> None:
        self._tx.execute(
            "UPDATE evaluation_claims SET finished_at = %s WHERE work_key = %s AND holder = %s",
            (_utc(now), key, holder),
        )

    def abandoned(self, now: datetime, limit: int) -> list[str]:
        rows = self._tx.execute(
            "SELECT work_key FROM evaluation_claims WHERE finished_at IS NULL AND lease_until < %s"
            " ORDER BY lease_until LIMIT %s",
            (_utc(now), limit),
        )
        return [key for (key,) in rows.fetchall()]

    def forget_before(self, moment: datetime) -> int:
        return self._tx.execute("DELETE FROM evaluation_claims WHERE lease_until < %s", (_utc(moment),)).rowcount


class PostgresIdentities(IdentityRepository):
    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def get(self, issuer: str, subject: str) -> ExternalIdentity | None:
        row = self._tx.execute(
            "SELECT user_id, created_at FROM sso_identities WHERE issuer = %s AND subject = %s", (issuer, subject)
        ).fetchone()
        return ExternalIdentity(issuer, subject, row[0], _utc(row[1])) if row else None

    def add(self, identity: ExternalIdentity) -> None:
        # The user's existence is checked first: a foreign-key failure would abort the transaction.
        if self._tx.execute("SELECT 1 FROM users WHERE user_id = %s", (identity.user_id,)).fetchone() is None:
            raise NotFound(f"user {identity.user_id} does not exist")
        cursor = self._tx.execute(
            "INSERT INTO sso_identities (issuer, subject, user_id, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (identity.issuer, identity.subject, identity.user_id, _utc(identity.created_at)),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists("this provider login is linked to an account already")

    def for_user(self, user_id: str) -> list[ExternalIdentity]:
        rows = self._tx.execute(
            "SELECT issuer, subject, created_at FROM sso_identities WHERE user_id = %s"
            " ORDER BY created_at, issuer, subject",
            (user_id,),
        )
        return [ExternalIdentity(issuer, subject, user_id, _utc(created)) for issuer, subject, created in rows]

    def use_nonce(self, issuer: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        self._tx.execute("DELETE FROM sso_used_nonces WHERE expires_at <= %s", (_utc(now),))
        # Two servers given the same token at once: the primary key lets exactly one insert win.
        cursor = self._tx.execute(
            "INSERT INTO sso_used_nonces (issuer, nonce, expires_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (issuer, nonce, _utc(expires_at)),
        )
        return cursor.rowcount == 1


class PostgresGoals(GoalRepository):
    _COLUMNS = "goal_id, user_id, metric, period, target, active, created_at, updated_at, notify"
    _qualified_columns = ", ".join(f"g.{column}" for column in _COLUMNS.split(", "))

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def add(self, goal: Goal) -> None:
        cursor = self._tx.execute(
            f"INSERT INTO goals ({self._COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                goal.goal_id,
                goal.user_id,
                int(goal.metric),
                int(goal.period),
                goal.target,
                goal.active,
                _utc(goal.created_at),
                _utc(goal.updated_at),
                goal.notify,
            ),
        )
        if cursor.rowcount != 1:
            raise AlreadyExists(
                f"you already have a {goal.period.name.lower()} {goal.metric.label} goal; update it instead"
            )

    def get(self, goal_id: str) -> Goal | None:
        row = self._tx.execute(f"SELECT {self._COLUMNS} FROM goals WHERE goal_id = %s", (goal_id,)).fetchone()
        return self._goal(row) if row else None

    def get_many(self, goal_ids: Sequence[str]) -> dict[str, Goal]:
        if not goal_ids:
            return {}
        rows = self._tx.execute(
            f"SELECT {self._COLUMNS} FROM goals WHERE goal_id = ANY(%s::text[])", (list(goal_ids),)
        ).fetchall()
        return {goal.goal_id: goal for goal in map(self._goal, rows)}

    def list_for_user(self, user_id: str, include_inactive: bool = False) -> list[Goal]:
        sql = f"SELECT {self._COLUMNS} FROM goals WHERE user_id = %s"
        if not include_inactive:
            sql += " AND active"
        return [self._goal(row) for row in self._tx.execute(sql + " ORDER BY created_at, goal_id", (user_id,))]

    def update(self, goal: Goal) -> None:
        self._tx.execute(
            "UPDATE goals SET target = %s, active = %s, notify = %s, updated_at = %s WHERE goal_id = %s",
            (goal.target, goal.active, goal.notify, _utc(goal.updated_at), goal.goal_id),
        )

    def delete(self, goal_id: str) -> None:
        self._tx.execute("DELETE FROM goals WHERE goal_id = %s", (goal_id,))

    def zones_with_notified_goals(self) -> list[str]:
        rows = self._tx.execute(
            "SELECT DISTINCT u.time_zone FROM users u JOIN goals g ON g.user_id = u.user_id"
            " WHERE g.active AND g.notify ORDER BY u.time_zone"
        )
        return [zone for (zone,) in rows]

    def notified_goals_in_zone(self, zone: str, after: str, limit: int) -> list[Goal]:
        # Two range scans rather than one query: in one, the planner joined every goal of every zone to
        # each page (80 ms a page of 2,000 users at 100,000; these take 20 ms). The repeated `> after`
        # bounds the goals index scan of the EXISTS, which otherwise starts at the first user.
        page = self._tx.execute(
            "SELECT u.user_id FROM users u WHERE u.time_zone = %s AND u.user_id > %s AND EXISTS ("
            " SELECT 1 FROM goals g WHERE g.user_id = u.user_id AND g.user_id > %s AND g.active AND g.notify)"
            " ORDER BY u.user_id LIMIT %s",
            (zone, after, after, limit),
        ).fetchall()
        if not page:
            return []
        last = page[-1][0]
        rows = self._tx.execute(
            f"SELECT {self._qualified_columns} FROM goals g JOIN users u ON u.user_id = g.user_id"
            " WHERE u.time_zone = %s AND g.active AND g.notify"
            " AND g.user_id > %s AND g.user_id <= %s AND u.user_id > %s AND u.user_id <= %s"
            " ORDER BY g.user_id, g.created_at, g.goal_id",
            (zone, after, last, after, last),
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
            active,
            _utc(created),
            _utc(updated),
            notify,
        )


class PostgresPreferences(PreferenceRepository):
    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def get_many(self, user_ids: Sequence[str]) -> dict[str, NotificationPreferences]:
        found = {user_id: NotificationPreferences(user_id) for user_id in user_ids}
        if found:
            rows = self._tx.execute(
                "SELECT user_id, enabled, quiet_start, quiet_end FROM notification_preferences WHERE user_id = ANY(%s)",
                (list(found),),
            )
            for user_id, enabled, start, end in rows:
                found[user_id] = NotificationPreferences(user_id, enabled, start, end)
        return found

    def put(self, preferences: NotificationPreferences) -> None:
        self._tx.execute(
            "INSERT INTO notification_preferences (user_id, enabled, quiet_start, quiet_end) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, quiet_start = excluded.quiet_start,"
            " quiet_end = excluded.quiet_end",
            (preferences.user_id, preferences.enabled, preferences.quiet_start, preferences.quiet_end),
        )


class PostgresNotifications(NotificationRepository):
    _COLUMNS = "seq, notification_id, user_id, kind, title, body, goal_id, created_at, read, idempotency_key"

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def add(self, notification: Notification) -> bool:
        cursor = self._tx.execute(
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
                _utc(notification.created_at),
                notification.read,
                notification.idempotency_key,
                notification.local_date,
            ),
        )
        return cursor.rowcount == 1

    def count_on_days(
        self, kind: NotificationKind, user_days: Sequence[tuple[str, date]]
    ) -> dict[tuple[str, date], int]:
        counts = dict.fromkeys(user_days, 0)
        if counts:
            rows = self._tx.execute(
                "SELECT n.user_id, n.local_date, count(*) FROM notifications n"
                " JOIN unnest(%s::text[], %s::date[]) AS k (user_id, local_date)"
                " ON n.user_id = k.user_id AND n.local_date = k.local_date"
                " WHERE n.kind = %s GROUP BY n.user_id, n.local_date",
                ([user_id for user_id, _ in counts], [day for _, day in counts], int(kind)),
            )
            for user_id, day, count in rows:
                counts[(user_id, day)] = count
        return counts

    def page(self, user_id: str, unread_only: bool, limit: int, before: int | None) -> NotificationPage:
        sql = f"SELECT {self._COLUMNS} FROM notifications WHERE user_id = %s"
        args: list = [user_id]
        if unread_only:
            sql += " AND NOT read"
        if before is not None:
            sql += " AND seq < %s"
            args.append(before)
        rows = self._tx.execute(sql + " ORDER BY seq DESC LIMIT %s", (*args, limit + 1)).fetchall()
        unread = self._tx.execute(
            "SELECT count(*) FROM notifications WHERE user_id = %s AND NOT read", (user_id,)
        ).fetchone()[0]
        more = len(rows) > limit
        rows = rows[:limit]
        return NotificationPage([self._notification(r) for r in rows], rows[-1][0] if more else None, unread)

    def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> int:
        if not notification_ids:
            return 0
        # FOR UPDATE: two requests marking the same notification must not both count it.
        owned = self._tx.execute(
            "SELECT notification_id, read FROM notifications WHERE user_id = %s AND notification_id = ANY(%s::text[])"
            " FOR UPDATE",
            (user_id, list(notification_ids)),
        ).fetchall()
        missing = set(notification_ids) - {row[0] for row in owned}
        if missing:
            raise NotFound(f"you have no notification {sorted(missing)[0]!r}; nothing was marked")
        unread = [row[0] for row in owned if not row[1]]
        if unread:
            self._tx.execute("UPDATE notifications SET read = true WHERE notification_id = ANY(%s::text[])", (unread,))
        return len(unread)

    @staticmethod
    def _notification(row) -> Notification:
        return _notification_of(*row[1:])


def _notification_of(
    notification_id, user_id, kind, title, body, goal_id, created, read, key, day=None
) -> Notification:
    """A notifications row as the domain's Notification, whichever query selected it."""
    return Notification(
        notification_id, user_id, NotificationKind(kind), title, body, _utc(created), key, goal_id, read, day
    )


class PostgresDeliveries(DeliveryRepository):
    _COLUMNS = "d.notification_id, d.user_id, d.due_at, d.updated_at, d.attempts, d.state, d.last_error"
    _NOTIFICATION = "n.kind, n.title, n.body, n.goal_id, n.created_at, n.read, n.idempotency_key, n.local_date"

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def add(self, delivery: Delivery) -> None:
        self._tx.execute(
            "INSERT INTO notification_deliveries"
            " (notification_id, user_id, due_at, updated_at, attempts, state, last_error)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (notification_id) DO NOTHING",
            (
                delivery.notification_id,
                delivery.user_id,
                _utc(delivery.due_at),
                _utc(delivery.updated_at),
                delivery.attempts,
                delivery.state.value,
                delivery.last_error,
            ),
        )

    def get_many(self, notification_ids: Sequence[str]) -> dict[str, Delivery]:
        if not notification_ids:
            return {}
        rows = self._tx.execute(
            f"SELECT {self._COLUMNS} FROM notification_deliveries d WHERE d.notification_id = ANY(%s::text[])",
            (list(notification_ids),),
        ).fetchall()
        return {row[0]: self._delivery(row) for row in rows}

    def claim(
        self, now: datetime, lease_until: datetime, limit: int, notification_ids: Sequence[str] | None = None
    ) -> list[tuple[Delivery, Notification]]:
        if notification_ids is not None and not notification_ids:
            return []
        only = " AND notification_id = ANY(%s::text[])" if notification_ids is not None else ""
        args: list = [_utc(now), *([list(notification_ids)] if notification_ids is not None else []), limit]
        # SKIP LOCKED: dispatchers claiming at the same moment take different rows instead of queueing.
        rows = self._tx.execute(
            "WITH due AS (SELECT notification_id FROM notification_deliveries"
            f" WHERE state = 'pending' AND due_at <= %s{only} ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE notification_deliveries d SET attempts = d.attempts + 1, due_at = %s, updated_at = %s"
            " FROM due, notifications n"
            " WHERE d.notification_id = due.notification_id AND n.notification_id = d.notification_id"
            f" RETURNING {self._COLUMNS}, {self._NOTIFICATION}",
            (*args, _utc(lease_until), _utc(now)),
        ).fetchall()
        return [(self._delivery(row[:7]), self._notification(row)) for row in rows]

    def settle(self, delivery: Delivery) -> bool:
        cursor = self._tx.execute(
            "UPDATE notification_deliveries SET state = %s, due_at = %s, updated_at = %s, last_error = %s"
            " WHERE notification_id = %s AND state = 'pending' AND attempts = %s",
            (
                delivery.state.value,
                _utc(delivery.due_at),
                _utc(delivery.updated_at),
                delivery.last_error,
                delivery.notification_id,
                delivery.attempts,
            ),
        )
        return cursor.rowcount == 1

    def next_due(self) -> datetime | None:
        (due,) = self._tx.execute("SELECT min(due_at) FROM notification_deliveries WHERE state = 'pending'").fetchone()
        return _utc(due)

    def dead(self, limit: int) -> list[tuple[Delivery, Notification]]:
        rows = self._tx.execute(
            f"SELECT {self._COLUMNS}, {self._NOTIFICATION} FROM notification_deliveries d"
            " JOIN notifications n USING (notification_id) WHERE d.state = 'dead' ORDER BY d.updated_at DESC LIMIT %s",
            (limit,),
        ).fetchall()
        return [(self._delivery(row[:7]), self._notification(row)) for row in rows]

    def replay(self, notification_ids: Sequence[str] | None, now: datetime) -> list[str]:
        sql = (
            "UPDATE notification_deliveries SET state = 'pending', attempts = 0, due_at = %s, updated_at = %s"
            " WHERE state = 'dead'"
        )
        args: list = [_utc(now), _utc(now)]
        if notification_ids is not None:
            sql += " AND notification_id = ANY(%s::text[])"
            args.append(list(notification_ids))
        return [row[0] for row in self._tx.execute(sql + " RETURNING notification_id", args).fetchall()]

    @staticmethod
    def _delivery(row) -> Delivery:
        notification_id, user_id, due, updated, attempts, state, error = row
        return Delivery(notification_id, user_id, _utc(due), _utc(updated), attempts, DeliveryState(state), error)

    @staticmethod
    def _notification(row) -> Notification:
        # The delivery's own columns come first; the notification's id and user are the delivery's.
        return _notification_of(*row[:2], *row[7:])
