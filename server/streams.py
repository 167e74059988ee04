"""How many long-lived streams one user may hold open on this server process.

A device that reconnects in a loop, or a leaked client, would otherwise take
memory and file descriptors meant for thousands of other devices. The count
is per process: behind a load balancer each server enforces it on its own.
Keepalive (see app.py) ends the streams of devices that vanished without
closing them, so their slots come back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from core.domain.errors import ResourceExhausted


class StreamLimiter:
    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._open: Counter[str] = Counter()

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """One slot for the duration of a stream; ResourceExhausted when the user has none left."""
        # Only the event loop's thread calls this, so the check and the count need no lock.
        if self._open[user_id] >= self._per_user:
            raise ResourceExhausted(
                f"this account already has {self._per_user} open streams on this server, the most allowed; "
                "close one (a device needs one SyncReadings stream) and try again"
            )
        self._open[user_id] += 1
        try:
            yield
        finally:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]

    def open_for(self, user_id: str) -> int:
        return self._open[user_id]
