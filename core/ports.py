"""The interfaces the service layer needs from the outside world.

Each store gets one small repository; account data sits behind a unit of work
that rolls back unless committed. Metrics have their own store because in
production they live in a different database (MongoDB) whose writes are
idempotent instead of transactional.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from core.domain.accounts import Credentials, Profile, User
from core.domain.aggregation import DaySummary
from core.domain.goals import Goal
from core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from core.domain.notifications import Notification
from core.domain.sequences import DeviceCursor


class UserRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, user: User, credentials: Credentials) -> None:
        """Store a new user; AlreadyExists when the username is taken."""

    @abc.abstractmethod
    def get(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def get_by_username(self, username: str) -> User | None: ...

    @abc.abstractmethod
    def update_profile(self, user_id: str, profile: Profile) -> None: ...

    @abc.abstractmethod
    def get_credentials(self, user_id: str) -> Credentials | None: ...

    @abc.abstractmethod
    def set_credentials(self, credentials: Credentials) -> None: ...

    @abc.abstractmethod
    def delete(self, user_id: str) -> None:
        """Remove the user and everything that belongs to them in this store."""


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    session_id: str
    user_id: str
    expires_at: datetime
    used: bool


class SessionRepository(abc.ABC):
    @abc.abstractmethod
    def create(self, session_id: str, user_id: str, now: datetime) -> None: ...

    @abc.abstractmethod
    def is_active(self, session_id: str) -> bool: ...

    @abc.abstractmethod
    def revoke(self, session_id: str, now: datetime) -> None: ...

    @abc.abstractmethod
    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        """End every session of the user but `keep` (the caller's own, when there is one)."""

    @abc.abstractmethod
    def add_refresh(self, record: RefreshRecord) -> None: ...

    @abc.abstractmethod
    def get_refresh(self, token_hash: str) -> RefreshRecord | None: ...

    @abc.abstractmethod
    def mark_refresh_used(self, token_hash: str) -> None: ...


class GoalRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, goal: Goal) -> None:
        """Store a goal; AlreadyExists when the user has one for the same metric and period."""

    @abc.abstractmethod
    def get(self, goal_id: str) -> Goal | None: ...

    @abc.abstractmethod
    def list_for_user(self, user_id: str, include_inactive: bool = False) -> list[Goal]: ...

    @abc.abstractmethod
    def update(self, goal: Goal) -> None: ...

    @abc.abstractmethod
    def delete(self, goal_id: str) -> None: ...


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_cursor: int | None
    unread_count: int


class NotificationRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, notification: Notification) -> bool:
        """Store it; False (and nothing stored) when its idempotency key was seen before."""

    @abc.abstractmethod
    def page(self, user_id: str, unread_only: bool, limit: int, before: int | None) -> NotificationPage:
        """Newest first; `before` is the cursor a previous page returned."""

    @abc.abstractmethod
    def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> int:
        """Mark the user's notifications read; NotFound (and nothing marked) if one is not theirs."""


class AccountsUnitOfWork(abc.ABC):
    """Account data changed together or not at all: `with uow: ...; uow.commit()`."""

    users: UserRepository
    sessions: SessionRepository
    goals: GoalRepository
    notifications: NotificationRepository

    def __enter__(self) -> AccountsUnitOfWork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


class MetricStore(abc.ABC):
    """Per-source minute values and the daily summaries made from them.

    Writes are idempotent: storing a minute again replaces it, so a batch
    applied twice leaves the same state as once.
    """

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """`with store.grouped(): ...`: the writes made inside share one commit where the store has transactions.

        Elsewhere it changes nothing: a failure inside may leave the writes made
        before it, which is fine because every write is idempotent. Reads inside
        see the writes made before them.
        """
        yield

    @abc.abstractmethod
    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        """Store the readings; returns the (metric, local day) pairs they touched.

        As if stored one by one, in order: a minute repeated among them keeps
        its last value and the local day it came with first.
        """

    @abc.abstractmethod
    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        """Every source's minute values of one local day."""

    @abc.abstractmethod
    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None: ...

    @abc.abstractmethod
    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        """Stored daily summaries in the range; days without data are absent."""

    @abc.abstractmethod
    def delete_user(self, user_id: str) -> None: ...


class PublishOutcome:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


class ReadingBus(abc.ABC):
    """Where accepted batches go on their way to the persister.

    A batch is acknowledged to the device only once it is durable (committed,
    or acknowledged by all in-sync replicas), because the device deletes what
    we acknowledge.
    """

    @abc.abstractmethod
    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        """Start making the batches durable, in order, without waiting.

        The future resolves once all of them are durable, to one
        PublishOutcome per batch: a batch whose (user, source, sequence) is
        already held is DUPLICATE and not published again. It fails with
        Unavailable when the bus cannot take them.
        """

    def publish(self, batches: Sequence[AcceptedBatch]) -> list[str]:
        """`submit` and wait."""
        return self.submit(batches).result()

    @abc.abstractmethod
    def cursor(self, user_id: str, source: str) -> DeviceCursor:
        """Which sequences of this source are durable."""


class PasswordHasher(abc.ABC):
    @abc.abstractmethod
    def hash(self, password: str) -> bytes: ...

    @abc.abstractmethod
    def verify(self, password: str, password_hash: bytes) -> bool: ...

    @abc.abstractmethod
    def waste_time(self, password: str) -> None:
        """Spend as long as a verification, so an unknown user answers as slowly as a wrong password."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: datetime


class TokenSigner(abc.ABC):
    @abc.abstractmethod
    def issue(self, user_id: str, session_id: str, now: datetime) -> tuple[str, datetime]:
        """A signed access token and when it expires."""

    @abc.abstractmethod
    def verify(self, token: str, now: datetime) -> AccessClaims:
        """The token's claims, or Unauthenticated saying what is wrong with it."""


class NotificationSink(abc.ABC):
    """Live delivery of stored notifications to whoever listens (in-app streams)."""

    @abc.abstractmethod
    def deliver(self, notification: Notification) -> None: ...
