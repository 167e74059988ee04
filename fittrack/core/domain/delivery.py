"""Pushing stored notifications to a user's devices: when, how often, and when to give up."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from fittrack.core.domain.notifications import Notification, NotificationPreferences


class DeliveryState(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True)
class Delivery:
    """One notification's push: due at `due_at`, tried `attempts` times so far."""

    notification_id: str
    user_id: str
    due_at: datetime
    updated_at: datetime
    attempts: int = 0
    state: DeliveryState = DeliveryState.PENDING
    last_error: str = ""


class PushOutcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # may work later: the receiver is down, slow or overloaded
    PERMANENT = "permanent"  # will not work by trying again: straight to the dead letters


@dataclass(frozen=True)
class PushResult:
    outcome: PushOutcome
    detail: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """A notification whose push failed for good, as operators see it.

    `state` is what the delivery is now: DEAD until someone replays it.
    """

    notification: Notification
    attempts: int
    last_error: str
    failed_at: datetime
    state: DeliveryState = DeliveryState.DEAD


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int, rng: random.Random) -> float:
        return backoff_delay(attempts, self.base_seconds, self.max_seconds, rng)


def backoff_delay(attempts: int, base_seconds: float, max_seconds: float, rng: random.Random) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: exponential backoff with full jitter.

    Uniform in [0, min(max, base * 2^(attempts - 1))]: spreading the retries
    over the whole window keeps a receiver that comes back from being hit by
    every waiting push at the same moment.
    """
    ceiling = min(max_seconds, base_seconds * 2 ** min(max(attempts - 1, 0), 62))
    return rng.uniform(0, ceiling)


def push_due_at(preferences: NotificationPreferences, zone: tzinfo, moment: datetime) -> datetime:
    """When a push wanted at `moment` may go: then, or when the user's quiet hours around it end (UTC)."""
    quiet_end = preferences.quiet_until(moment.astimezone(zone))
    return quiet_end.astimezone(UTC) if quiet_end is not None else moment
