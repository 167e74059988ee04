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

from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.delivery import DeadLetter, Delivery, PushResult
from fittrack.core.domain.events import Event
from fittrack.core.domain.goals import Goal
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity, ProviderSettings, VerifiedIdentity
from fittrack.core.domain.reports import RangeReport
from fittrack.core.domain.sequences import BatchKey, DeviceCursor, LogPosition
from fittrack.core.domain.throttle import LoginFailures


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

    @abc.abstractmethod
    def time_zones(self) -> list[str]:
        """Every time zone some user lives in."""

    @abc.abstractmethod
    def ids_in_zone(self, zone: str, after: str, limit: int) -> list[str]:
        """Up to `limit` ids of users in `zone`, in id order, after the id `after` ("" for the first page)."""

    @abc.abstractmethod
    def expiring_in_zone(
        self, zone: str, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        """Up to `limit` (user id, password expiry) of users in `zone` whose password expires in [start, end).

        In user id order, after the id `after` ("" for the first page).
        """

    def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The named users that exist; adapters answer in one query."""
        found = {user_id: self.get(user_id) for user_id in user_ids}
        return {user_id: user for user_id, user in found.items() if user is not None}


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
    def started_at(self, session_id: str) -> datetime | None:
        """When the session's login happened (refreshing keeps it); None for an unknown session."""

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

    @abc.abstractmethod
    def zones_with_notified_goals(self) -> list[str]:
        """The time zones of users with an active goal they want notifications about."""

    @abc.abstractmethod
    def notified_goals_in_zone(self, zone: str, after: str, limit: int) -> list[Goal]:
        """The active goals with notify on of the next `limit` such users of `zone` after the user id `after`.

        Ordered by user id, so the last one's user id is the next page's `after`.
        """

    def get_many(self, goal_ids: Sequence[str]) -> dict[str, Goal]:
        """The named goals that exist; adapters answer in one query."""
        found = {goal_id: self.get(goal_id) for goal_id in goal_ids}
        return {goal_id: goal for goal_id, goal in found.items() if goal is not None}


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

    @abc.abstractmethod
    def count_on_days(
        self, kind: NotificationKind, user_days: Sequence[tuple[str, date]]
    ) -> dict[tuple[str, date], int]:
        """How many notifications of `kind` each (user, local day) holds; every pair asked for is in the answer."""


class DeliveryRepository(abc.ABC):
    """Pushes of stored notifications, with their retry state; a dead one is a dead letter."""

    @abc.abstractmethod
    def add(self, delivery: Delivery) -> None:
        """Record a push to make; nothing changes when the notification has one already."""

    @abc.abstractmethod
    def get_many(self, notification_ids: Sequence[str]) -> dict[str, Delivery]: ...

    @abc.abstractmethod
    def claim(
        self, now: datetime, lease_until: datetime, limit: int, notification_ids: Sequence[str] | None = None
    ) -> list[tuple[Delivery, Notification]]:
        """Take up to `limit` pending deliveries due by `now` (of these notifications, when named), oldest due first.

        Each counts one more attempt and is due again at `lease_until`, so that
        a dispatcher that dies while pushing leaves it to be retried then, and
        other dispatchers leave it alone meanwhile (skipping rows another
        transaction holds instead of waiting for them).
        """

    @abc.abstractmethod
    def settle(self, delivery: Delivery) -> bool:
        """Store a claimed delivery's new state, due time and error.

        False (nothing changed) when it is no longer as claimed: pending with
        the same number of attempts.
        """

    @abc.abstractmethod
    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due; None when none is pending."""

    @abc.abstractmethod
    def dead(self, limit: int) -> list[tuple[Delivery, Notification]]:
        """The dead letters, most recently failed first."""

    @abc.abstractmethod
    def replay(self, notification_ids: Sequence[str] | None, now: datetime) -> list[str]:
        """Make dead deliveries (these, or all with None) pending again, due now, attempts reset; their ids."""


class PreferenceRepository(abc.ABC):
    @abc.abstractmethod
    def get_many(self, user_ids: Sequence[str]) -> dict[str, NotificationPreferences]:
        """Every named user's preferences; the defaults for a user who never set any."""

    def get(self, user_id: str) -> NotificationPreferences:
        return self.get_many([user_id])[user_id]

    @abc.abstractmethod
    def put(self, preferences: NotificationPreferences) -> None: ...


class LoginFailureRepository(abc.ABC):
    """Failed logins per canonical username (existing or not), shared by every server (core/domain/throttle.py)."""

    @abc.abstractmethod
    def get(self, username: str) -> LoginFailures | None:
        """The record; in a unit of work that writes, locked until it ends, so concurrent failures all count."""

    @abc.abstractmethod
    def put(self, failures: LoginFailures) -> None: ...

    @abc.abstractmethod
    def clear(self, username: str) -> None:
        """Forget the failures (after a successful login)."""

    @abc.abstractmethod
    def forget_before(self, moment: datetime) -> int:
        """Delete the records whose last failure came before `moment`; how many went."""


class AddressFailureRepository(abc.ABC):
    """Failed logins per client address, shared by every server (fittrack/core/domain/throttle.AddressPolicy)."""

    @abc.abstractmethod
    def recent(self, address: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The times of the address's failures in (start, end], the newest `limit` of them, newest first."""

    @abc.abstractmethod
    def add(self, address: str, moment: datetime, forget_before: datetime) -> None:
        """Record one failure; the address's failures stamped before `forget_before` go in the same statement."""

    @abc.abstractmethod
    def forget_before(self, moment: datetime) -> int:
        """Delete every address's failures stamped before `moment`; how many went."""


class IdentityRepository(abc.ABC):
    """Logins at OpenID Providers, each (issuer, subject) linked to one account, and the nonces already used."""

    @abc.abstractmethod
    def get(self, issuer: str, subject: str) -> ExternalIdentity | None: ...

    @abc.abstractmethod
    def add(self, identity: ExternalIdentity) -> None:
        """Link it; AlreadyExists (and nothing stored) when the (issuer, subject) is linked already."""

    @abc.abstractmethod
    def for_user(self, user_id: str) -> list[ExternalIdentity]:
        """The user's identities, oldest first; they go when the user is deleted."""

    @abc.abstractmethod
    def use_nonce(self, issuer: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        """Remember that an ID token with this nonce was accepted, until `expires_at`; False when it was already.

        Kept in the account database so that every server sees it: an ID token
        replayed to another server behind the load balancer is refused too.
        Entries past their expiry are forgotten (their tokens are refused as expired anyway).
        """


class EvaluationClaimRepository(abc.ABC):
    """Which evaluator does each piece of evaluation work (fittrack/core/domain/evaluation.EvaluationWork), so that
    several evaluator processes share the work instead of each doing all of it.

    A claim is a lease: its holder renews it while working and finishes it at the end. One
    whose lease ran out unfinished was left by an evaluator that stopped; another may take it.
    """

    @abc.abstractmethod
    def claim(self, key: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        """Hold `key` for `holder` until `lease_until`: True when it was unclaimed, already this holder's, or
        left unfinished with its lease run out; False when another holder's lease runs or it is finished.
        Claiming again is how a holder renews its lease."""

    @abc.abstractmethod
    def finish(self, key: str, holder: str, now: datetime) -> None:
        """The holder did the work: nobody claims it again."""

    @abc.abstractmethod
    def abandoned(self, now: datetime, limit: int) -> list[str]:
        """Keys of claims whose lease ran out before they were finished, the longest expired first."""

    @abc.abstractmethod
    def forget_before(self, moment: datetime) -> int:
        """Delete the claims whose lease ended before `moment`; how many went."""


class AccountsUnitOfWork(abc.ABC):
    """Account data changed together or not at all: `with uow: ...; uow.commit()`."""

    users: UserRepository
    sessions: SessionRepository
    goals: GoalRepository
    notifications: NotificationRepository
    preferences: PreferenceRepository
    deliveries: DeliveryRepository
    login_failures: LoginFailureRepository
    address_failures: AddressFailureRepository
    identities: IdentityRepository
    evaluation_claims: EvaluationClaimRepository

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

    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        """Many users' daily values in one go, for batch work such as goal evaluation.

        Users and metrics without data in the range are absent. Stores
        override this with a query per chunk of users; this default asks per
        user and metric.
        """
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        for user_id in user_ids:
            for metric in metrics:
                days = {d.day: d.value for d in self.days(user_id, metric, start, end)}
                if days:
                    found.setdefault(user_id, {})[metric] = days
        return found

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


class BatchClaims(abc.ABC):
    """Which copy of each numbered batch in the reading log counts (the production persister's record).

    The log may hold several copies of one (user, source, sequence): the
    first one counts and the rest were answered DUPLICATE (domain.sequences.first_in_log).
    The record outlives the persister's offset commits, so a copy read in a
    later poll, or by another persister after a rebalance, is told apart too.
    """

    @abc.abstractmethod
    def claim(self, firsts: dict[BatchKey, LogPosition], now: datetime) -> dict[BatchKey, LogPosition]:
        """Record each batch's position unless one is recorded already; every batch's recorded position.

        A batch missing from the answer has no claim to count: its user is gone,
        or another persister is recording it at this very moment.
        """

    @abc.abstractmethod
    def forget_before(self, moment: datetime) -> int:
        """Drop claims recorded before `moment`, once no copy of theirs can still be in the log; how many went."""


class PasswordHasher(abc.ABC):
    @abc.abstractmethod
    def hash(self, password: str) -> bytes: ...

    @abc.abstractmethod
    def verify(self, password: str, password_hash: bytes) -> bool: ...

    @abc.abstractmethod
    def waste_time(self, password: str) -> None:
        """Spend as long as a verification, so an unknown user answers as slowly as a wrong password."""


class CommonPasswords(abc.ABC):
    """The passwords attackers try first, which a new password must not be."""

    @abc.abstractmethod
    def __contains__(self, password: str) -> bool:
        """Whether `password` is on the list, ignoring letter case."""


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


class NotificationQueue(abc.ABC):
    """Where new notifications wait for the dispatcher, which stores, deduplicates and delivers them.

    Embedded: a table in the SQLite file drained by the in-process dispatcher;
    production: the `notifications` topic, keyed by user.
    """

    @abc.abstractmethod
    def send(self, notifications: Sequence[Notification]) -> None:
        """Queue them; durable when it returns (committed, or acknowledged by Kafka). Unavailable otherwise."""


class NotificationSink(abc.ABC):
    """Live delivery of stored notifications to whoever listens (in-app streams)."""

    @abc.abstractmethod
    def deliver(self, notification: Notification) -> None: ...


class ReportRenderer(abc.ABC):
    """Draws a download's figures as a document (the PDF with charts)."""

    content_type: str  # MIME type of what render returns
    extension: str  # file name extension, without the dot

    @abc.abstractmethod
    def render(self, report: RangeReport) -> bytes:
        """The whole file. Called from worker threads, several at once."""


class PushChannel(abc.ABC):
    """A way to reach a user's devices outside the app (a webhook; FCM or APNs could be others)."""

    @abc.abstractmethod
    def push(self, notification: Notification) -> PushResult:
        """Try once; never raises. A receiver may get the same notification again after a crash: the
        channel passes the notification id along as the key that tells a redelivery from a new one."""


class DeadLetterLog(abc.ABC):
    """Where notifications whose push failed for good are recorded for operators (production: a topic)."""

    @abc.abstractmethod
    def record(self, letters: Sequence[DeadLetter]) -> None:
        """Durable when it returns; Unavailable otherwise."""

    @abc.abstractmethod
    def read(self) -> list[DeadLetter]:
        """Everything recorded, oldest first (a notification replayed and dead again appears twice)."""


class IdentityProvider(abc.ABC):
    """One configured OpenID Provider, as the server talks to it (fittrack/core/adapters/oidc.py)."""

    settings: ProviderSettings

    @abc.abstractmethod
    def redeem(self, code: str, code_verifier: str, redirect_uri: str) -> str:
        """The ID token the token endpoint gives for an authorization code.

        Unauthenticated when the provider refuses the code; Unavailable when it cannot be reached.
        """

    @abc.abstractmethod
    def verify(self, id_token: str, nonce: str, now: datetime) -> VerifiedIdentity:
        """The identity a valid ID token proves (signature, algorithm, claims; not yet the nonce's reuse).

        Unauthenticated saying what is wrong; Unavailable when the provider's keys cannot be fetched.
        """


class Observer(abc.ABC):
    """Told what the services did (fittrack.core.domain.events): the metrics and the audit log listen here."""

    @abc.abstractmethod
    def saw(self, event: Event) -> None:
        """Must not raise, and must return quickly: it is called on the path of the request."""


class Unobserved(Observer):
    """No one is listening (tests of the domain, tools)."""

    def saw(self, event: Event) -> None:
        pass
