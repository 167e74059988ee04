"""Failed logins per client address, per server process: a sliding window in memory.

The per-account limit (core/domain/throttle.py) stops guessing one account's
password; this one slows an address that tries many accounts. It is kept in
memory, per process, because it only has to hold for minutes, and its table
is bounded so that a flood of addresses cannot grow it without end.

Behind a proxy or load balancer every call seems to come from it: give each
server its own public listener, or raise FITTRACK_MAX_LOGIN_FAILURES_PER_ADDRESS.
Forwarded headers are not trusted, since any client can set them.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

from core.domain.errors import ResourceExhausted

WINDOW = timedelta(minutes=1)
MAX_ADDRESSES = 100_000


def client_address(peer: str | None) -> str:
    """The address part of grpc's peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:...").

    IPv6 clients are grouped by /64, the block one subscriber usually holds, so
    that stepping through one's own addresses does not reset the limit.
    """
    if not peer:
        return "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]").split("%")[0]
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return kind  # unix sockets and the like: one bucket each


class FailedLoginLimiter:
    def __init__(
        self,
        max_failures: int,
        clock: Callable[[], datetime],
        window: timedelta = WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._max = max_failures
        self._now = clock
        self._window = window
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """RESOURCE_EXHAUSTED while `address` has had max_failures failed logins within the window."""
        now = self._now()
        with self._lock:
            times = self._recent(address, now)
            if times is None or len(times) < self._max:
                return
            wait = times[0] + self._window - now
        seconds = max(1, math.ceil(wait.total_seconds()))
        raise ResourceExhausted(
            f"too many failed logins from your address; try again in {seconds} second{'' if seconds == 1 else 's'}"
        )

    def failed(self, address: str) -> None:
        now = self._now()
        with self._lock:
            times = self._recent(address, now)
            if times is None:
                times = self._failures[address] = deque(maxlen=self._max)
                while len(self._failures) > self._max_addresses:
                    self._failures.popitem(last=False)  # the address that failed least recently
            times.append(now)
            self._failures.move_to_end(address)

    def _recent(self, address: str, now: datetime) -> deque[datetime] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and now - times[0] >= self._window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times
