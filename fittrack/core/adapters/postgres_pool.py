"""The production profile's PostgreSQL connections: a pool that starts empty, keeps what it lends and never blocks,
and the transactions that borrow from it (with a read-only fallback to the replica while the primary is out).

Every lost or refused connection becomes Unavailable, and the connection is
thrown away rather than pooled, so the adapter heals once the server is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import psycopg2
import psycopg2.extensions
from psycopg2.pool import PoolError, ThreadedConnectionPool

from fittrack.core.domain.errors import Unavailable

log = logging.getLogger(__name__)

UNAVAILABLE = "the account database is unavailable; try again"
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# After a failed connect, reads that may use the replica go there for this long without trying the primary;
# so do they while another connect has been waiting this long (a healthy server answers in milliseconds).
OUT_SECONDS = 5.0
SLOW_CONNECT_SECONDS = 0.5


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


class Pool(ThreadedConnectionPool):
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

    def in_use(self) -> int:
        """Connections lent out now (the metrics read it at each scrape)."""
        with self._lock:
            return len(self._used)

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
        except CONNECTION_ERRORS as error:
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


class Transaction:
    """One pooled connection for the span of a transaction; a lost connection is Unavailable and never pooled.

    `fallback` is a second pool (the replica) for a read-only transaction that
    prefers the primary: while the primary is out (a failover under way), it
    reads there instead of failing.
    """

    def __init__(self, pool: Pool, read_only: bool, fallback: Pool | None = None) -> None:
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
            except CONNECTION_ERRORS as error:
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
        except CONNECTION_ERRORS as error:
            self._discard(error)
            raise Unavailable(UNAVAILABLE) from error

    def rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except CONNECTION_ERRORS as error:
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
