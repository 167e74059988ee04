"""In-memory fakes of every port in fittrack/core/ports.py, plus a settable clock.

They follow the SQLite adapters' semantics (fittrack/core/adapters/sqlite_*.py) so that a
service tested against them behaves as it does in the embedded server:

- FakeUnitOfWork works on a deep copy of the committed account data and
  publishes it only on commit; leaving the `with` block without committing
  discards every change (like cosmicpython's FakeUnitOfWork, but it really
  rolls back). Units of work are meant to be used one after another, as the
  services do: a commit replaces the whole committed state.
- usernames are unique regardless of case, a goal is unique per (user, metric,
  period), a notification per (user, idempotency key); deleting a user removes
  their credentials, sessions, refresh tokens, goals and notifications.
- FakeMetricStore replaces a minute's value on a resend but keeps the local
  day it was first placed on.
- FakeReadingBus keeps a cursor per (user, source): a batch with a sequence not
  above it is DUPLICATE; sequence 0 means "no sequence" and is always accepted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from fittrack.app.config import Config
from fittrack.app.stores import Stores
from fittrack.app.wiring import build_services, dispatcher_on, persister_on
from fittrack.core.adapters.tokens import JwtSigner
from fittrack.core.domain.accounts import Credentials, Principal, Profile, ProfileChanges, User
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.delivery import DeadLetter, Delivery, DeliveryState, PushOutcome, PushResult
from fittrack.core.domain.errors import AlreadyExists, NotFound, Unauthenticated, Unavailable
from fittrack.core.domain.events import Event
from fittrack.core.domain.goals import Goal
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity, ProviderSettings, VerifiedIdentity, check_claims
from fittrack.core.domain.placement import Write, place_minutes
from fittrack.core.domain.sequences import BatchKey, DeviceCursor, LogPosition
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import (
    AccountsUnitOfWork,
    AddressFailureRepository,
    BatchClaims,
    CommonPasswords,
    DeadLetterLog,
    DeliveryRepository,
    EvaluationClaimRepository,
    GoalRepository,
    IdentityProvider,
    IdentityRepository,
    LoginFailureRepository,
    MetricStore,
    NotificationPage,
    NotificationQueue,
    NotificationRepository,
    NotificationSink,
    Observer,
    PasswordHasher,
    PreferenceRepository,
    PublishOutcome,
    PushChannel,
    ReadingBus,
    RefreshRecord,
    SessionRepository,
    UserRepository,
)
from fittrack.core.services.accounts import Accounts
from fittrack.core.services.dispatch import Dispatcher
from fittrack.core.services.goals import Goals
from fittrack.core.services.metrics import Metrics, RawBatch
from fittrack.core.services.notifications import Notifications
from fittrack.core.services.persistence import Persister
from fittrack.core.services.reports import Reports

TOKEN_SECRET = b"unit-test-secret-of-at-least-32-bytes!"
ACCESS_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes
    partition: int = 0


class FakeConsumer:
    """Just what the workers' ConsumerLoop uses of kafka-python's KafkaConsumer, with one partition."""

    def __init__(self, payloads: list[bytes], partition: str = "topic-0") -> None:
        self.log = [Record(offset, payload) for offset, payload in enumerate(payloads)]
        self.partition = partition
        self.position = 0
        self.committed = 0
        self.events: list[str] = []

    def poll(self, timeout_ms: int) -> dict:
        records = self.log[self.position :]
        self.position = len(self.log)
        return {self.partition: records} if records else {}

    def seek(self, partition, offset: int) -> None:
        self.events.append(f"seek {offset}")
        self.position = offset

    def commit(self) -> None:
        self.events.append("commit")
        self.committed = self.position


class FakeBatchClaims(BatchClaims):
    """PostgresBatchClaims in a dict: the first recorded position of each batch stays."""

    def __init__(self) -> None:
        self.claims: dict[BatchKey, tuple[LogPosition, datetime]] = {}

    def claim(self, firsts: dict[BatchKey, LogPosition], now: datetime) -> dict[BatchKey, LogPosition]:
        for key, position in firsts.items():
            self.claims.setdefault(key, (position, now))
        return {key: self.claims[key][0] for key in firsts}

    def forget_before(self, moment: datetime) -> int:
        old = [key for key, (_, claimed_at) in self.claims.items() if claimed_at < moment]
        for key in old:
            del self.claims[key]
        return len(old)


class FakeClock:
    """A clock that stands still until the test sets or advances it."""

    def __init__(self, now: datetime = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)) -> None:
        if now.tzinfo is None:
            raise ValueError("the fake clock needs an aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the fake clock needs an aware datetime")
        self.now = now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# --- account data -----------------------------------------------------------


@dataclass
class _SessionRow:
    user_id: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass
class _StoredNotification:
    seq: int
    notification: Notification


@dataclass
class _Claim:
    holder: str
    lease_until: datetime
    finished: bool = False


@dataclass
class AccountsState:
    """Everything the account database holds."""

    users: dict[str, User] = field(default_factory=dict)
    credentials: dict[str, Credentials] = field(default_factory=dict)
    sessions: dict[str, _SessionRow] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshRecord] = field(default_factory=dict)
    goals: dict[str, Goal] = field(default_factory=dict)
    notifications: list[_StoredNotification] = field(default_factory=list)
    last_seq: int = 0
    preferences: dict[str, NotificationPreferences] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    identities: dict[tuple[str, str], ExternalIdentity] = field(default_factory=dict)
    used_nonces: dict[tuple[str, str], datetime] = field(default_factory=dict)
    login_failures: dict[str, LoginFailures] = field(default_factory=dict)
    address_failures: list[tuple[str, datetime]] = field(default_factory=list)
    evaluation_claims: dict[str, _Claim] = field(default_factory=dict)


class FakeUsers(UserRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def add(self, user: User, credentials: Credentials | None) -> None:
        if self._by_username(user.username) is not None or user.user_id in self._state.users:
            raise AlreadyExists(f"username {user.username!r} is taken; choose another")
        self._state.users[user.user_id] = user
        if credentials is not None:
            self._state.credentials[user.user_id] = credentials

    def get(self, user_id: str) -> User | None:
        return self._state.users.get(user_id)

    def get_by_username(self, username: str) -> User | None:
        return self._by_username(username)

    def _by_username(self, username: str) -> User | None:
        # The SQLite column is COLLATE NOCASE.
        wanted = username.lower()
        return next((u for u in self._state.users.values() if u.username.lower() == wanted), None)

    def update_profile(self, user_id: str, profile: Profile) -> None:
        user = self._state.users.get(user_id)
        if user is not None:
            self._state.users[user_id] = replace(user, profile=profile)

    def get_credentials(self, user_id: str) -> Credentials | None:
        return self._state.credentials.get(user_id)

    def set_credentials(self, credentials: Credentials) -> None:
        self._state.credentials[credentials.user_id] = credentials

    def delete(self, user_id: str) -> None:
        state = self._state
        state.users.pop(user_id, None)
        state.credentials.pop(user_id, None)
        state.sessions = {k: v for k, v in state.sessions.items() if v.user_id != user_id}
        state.refresh_tokens = {k: v for k, v in state.refresh_tokens.items() if v.user_id != user_id}
        state.goals = {k: v for k, v in state.goals.items() if v.user_id != user_id}
        state.notifications = [n for n in state.notifications if n.notification.user_id != user_id]
        state.preferences.pop(user_id, None)
        state.deliveries = {k: v for k, v in state.deliveries.items() if v.user_id != user_id}
        state.identities = {k: v for k, v in state.identities.items() if v.user_id != user_id}

    def time_zones(self) -> list[str]:
        return sorted({user.profile.time_zone for user in self._state.users.values()})

    def ids_in_zone(self, zone: str, after: str, limit: int) -> list[str]:
        ids = sorted(u.user_id for u in self._state.users.values() if u.profile.time_zone == zone and u.user_id > after)
        return ids[:limit]

    def expiring_in_zone(
        self, zone: str, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        found = sorted(
            (user.user_id, credentials.expires_at)
            for user in self._state.users.values()
            if user.profile.time_zone == zone
            and user.user_id > after
            and (credentials := self._state.credentials.get(user.user_id)) is not None
            and credentials.expires_at is not None
            and start <= credentials.expires_at < end
        )
        return found[:limit]


class FakeSessions(SessionRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def create(self, session_id: str, user_id: str, now: datetime) -> None:
        if session_id in self._state.sessions:
            raise AlreadyExists(f"session {session_id} exists")
        _hold_account(self._state, user_id)
        self._state.sessions[session_id] = _SessionRow(user_id, now)

    def is_active(self, session_id: str) -> bool:
        row = self._state.sessions.get(session_id)
        return row is not None and row.revoked_at is None

    def started_at(self, session_id: str) -> datetime | None:
        row = self._state.sessions.get(session_id)
        return row.created_at if row else None

    def revoke(self, session_id: str, now: datetime) -> None:
        row = self._state.sessions.get(session_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = now

    def revoke_all(self, user_id: str, now: datetime, keep: str | None = None) -> None:
        for session_id, row in self._state.sessions.items():
            if row.user_id == user_id and row.revoked_at is None and session_id != keep:
                row.revoked_at = now

    def add_refresh(self, record: RefreshRecord) -> None:
        if record.token_hash in self._state.refresh_tokens:
            raise AlreadyExists("refresh token exists")
        self._state.refresh_tokens[record.token_hash] = record

    def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        return self._state.refresh_tokens.get(token_hash)

    def mark_refresh_used(self, token_hash: str) -> None:
        record = self._state.refresh_tokens.get(token_hash)
        if record is not None:
            self._state.refresh_tokens[token_hash] = replace(record, used=True)


def _hold_account(state: AccountsState, user_id: str) -> None:
    """The adapters' check before adding a row that belongs to an account (sql.dialect's _hold_account)."""
    if user_id not in state.users:
        raise NotFound("this account no longer exists: it was deleted")


class FakeGoals(GoalRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def add(self, goal: Goal) -> None:
        clash = any(
            g.user_id == goal.user_id and g.metric == goal.metric and g.period == goal.period
            for g in self._state.goals.values()
        )
        _hold_account(self._state, goal.user_id)
        if clash or goal.goal_id in self._state.goals:
            raise AlreadyExists(
                f"you already have a {goal.period.name.lower()} {goal.metric.label} goal; update it instead"
            )
        self._state.goals[goal.goal_id] = goal

    def get(self, goal_id: str) -> Goal | None:
        return self._state.goals.get(goal_id)

    def list_for_user(self, user_id: str, include_inactive: bool = False) -> list[Goal]:
        goals = [g for g in self._state.goals.values() if g.user_id == user_id and (include_inactive or g.active)]
        return sorted(goals, key=lambda g: (g.created_at, g.goal_id))

    def update(self, goal: Goal) -> None:
        stored = self._state.goals.get(goal.goal_id)
        if stored is not None:
            # Like the SQL UPDATE: only target, active, notify and updated_at change.
            self._state.goals[goal.goal_id] = replace(
                stored, target=goal.target, active=goal.active, notify=goal.notify, updated_at=goal.updated_at
            )

    def delete(self, goal_id: str) -> None:
        self._state.goals.pop(goal_id, None)

    def _notified(self) -> list[Goal]:
        return [g for g in self._state.goals.values() if g.active and g.notify and g.user_id in self._state.users]

    def zones_with_notified_goals(self) -> list[str]:
        return sorted({self._state.users[g.user_id].profile.time_zone for g in self._notified()})

    def notified_goals_in_zone(self, zone: str, after: str, limit: int) -> list[Goal]:
        goals = [g for g in self._notified() if self._state.users[g.user_id].profile.time_zone == zone]
        users = sorted({g.user_id for g in goals if g.user_id > after})[:limit]
        return sorted((g for g in goals if g.user_id in users), key=lambda g: (g.user_id, g.created_at, g.goal_id))


class FakePreferences(PreferenceRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def get_many(self, user_ids: Sequence[str]) -> dict[str, NotificationPreferences]:
        return {u: self._state.preferences.get(u, NotificationPreferences(u)) for u in user_ids}

    def put(self, preferences: NotificationPreferences) -> None:
        _hold_account(self._state, preferences.user_id)
        self._state.preferences[preferences.user_id] = preferences


class FakeNotifications(NotificationRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def add(self, notification: Notification) -> bool:
        for stored in self._state.notifications:
            n = stored.notification
            if n.user_id == notification.user_id and n.idempotency_key == notification.idempotency_key:
                return False
        self._state.last_seq += 1
        self._state.notifications.append(_StoredNotification(self._state.last_seq, notification))
        return True

    def page(self, user_id: str, unread_only: bool, limit: int, before: int | None) -> NotificationPage:
        rows = [
            s
            for s in self._state.notifications
            if s.notification.user_id == user_id
            and not (unread_only and s.notification.read)
            and (before is None or s.seq < before)
        ]
        rows.sort(key=lambda s: s.seq, reverse=True)
        mine = [s.notification for s in self._state.notifications if s.notification.user_id == user_id]
        unread = sum(1 for n in mine if not n.read)
        more = len(rows) > limit
        rows = rows[:limit]
        return NotificationPage([s.notification for s in rows], rows[-1].seq if more else None, unread)

    def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> int:
        owned = {
            s.notification.notification_id: s
            for s in self._state.notifications
            if s.notification.user_id == user_id and s.notification.notification_id in notification_ids
        }
        missing = set(notification_ids) - owned.keys()
        if missing:
            raise NotFound(f"you have no notification {sorted(missing)[0]!r}; nothing was marked")
        marked = 0
        for stored in owned.values():
            if not stored.notification.read:
                stored.notification = replace(stored.notification, read=True)
                marked += 1
        return marked

    def count_on_days(
        self, kind: NotificationKind, user_days: Sequence[tuple[str, date]]
    ) -> dict[tuple[str, date], int]:
        counts = dict.fromkeys(user_days, 0)
        for stored in self._state.notifications:
            key = (stored.notification.user_id, stored.notification.local_date)
            if stored.notification.kind is kind and key in counts:
                counts[key] += 1
        return counts


class FakeDeliveries(DeliveryRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def add(self, delivery: Delivery) -> None:
        self._state.deliveries.setdefault(delivery.notification_id, delivery)

    def get_many(self, notification_ids: Sequence[str]) -> dict[str, Delivery]:
        return {i: self._state.deliveries[i] for i in notification_ids if i in self._state.deliveries}

    def claim(
        self, now: datetime, lease_until: datetime, limit: int, notification_ids: Sequence[str] | None = None
    ) -> list[tuple[Delivery, Notification]]:
        due = sorted(
            (
                d
                for d in self._state.deliveries.values()
                if d.state is DeliveryState.PENDING
                and d.due_at <= now
                and (notification_ids is None or d.notification_id in notification_ids)
            ),
            key=lambda d: d.due_at,
        )[:limit]
        notifications = {s.notification.notification_id: s.notification for s in self._state.notifications}
        claimed = []
        for delivery in due:
            delivery = replace(delivery, attempts=delivery.attempts + 1, due_at=lease_until, updated_at=now)
            self._state.deliveries[delivery.notification_id] = delivery
            claimed.append((delivery, notifications[delivery.notification_id]))
        return claimed

    def settle(self, delivery: Delivery) -> bool:
        stored = self._state.deliveries.get(delivery.notification_id)
        if stored is None or stored.state is not DeliveryState.PENDING or stored.attempts != delivery.attempts:
            return False
        self._state.deliveries[delivery.notification_id] = delivery
        return True

    def next_due(self) -> datetime | None:
        pending = [d.due_at for d in self._state.deliveries.values() if d.state is DeliveryState.PENDING]
        return min(pending, default=None)

    def dead(self, limit: int) -> list[tuple[Delivery, Notification]]:
        notifications = {s.notification.notification_id: s.notification for s in self._state.notifications}
        dead = [d for d in self._state.deliveries.values() if d.state is DeliveryState.DEAD]
        dead.sort(key=lambda d: d.updated_at, reverse=True)
        return [(d, notifications[d.notification_id]) for d in dead[:limit]]

    def replay(self, notification_ids: Sequence[str] | None, now: datetime) -> list[str]:
        replayed = [
            d.notification_id
            for d in self._state.deliveries.values()
            if d.state is DeliveryState.DEAD and (notification_ids is None or d.notification_id in notification_ids)
        ]
        for notification_id in replayed:
            self._state.deliveries[notification_id] = replace(
                self._state.deliveries[notification_id],
                state=DeliveryState.PENDING,
                attempts=0,
                due_at=now,
                updated_at=now,
            )
        return replayed


class FakeLoginFailures(LoginFailureRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def get(self, username: str) -> LoginFailures | None:
        return self._state.login_failures.get(username)

    def put(self, failures: LoginFailures) -> None:
        self._state.login_failures[failures.username] = failures

    def clear(self, username: str) -> None:
        self._state.login_failures.pop(username, None)

    def forget_before(self, moment: datetime) -> int:
        old = [name for name, f in self._state.login_failures.items() if f.last_failure and f.last_failure < moment]
        for name in old:
            del self._state.login_failures[name]
        return len(old)


class FakeAddressFailures(AddressFailureRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def recent(self, address: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        times = [at for who, at in self._state.address_failures if who == address and start < at <= end]
        return sorted(times, reverse=True)[:limit]

    def add(self, address: str, moment: datetime, forget_before: datetime) -> None:
        kept = [(who, at) for who, at in self._state.address_failures if who != address or at >= forget_before]
        self._state.address_failures[:] = [*kept, (address, moment)]

    def forget_before(self, moment: datetime) -> int:
        before = len(self._state.address_failures)
        self._state.address_failures[:] = [(who, at) for who, at in self._state.address_failures if at >= moment]
        return before - len(self._state.address_failures)


class FakeEvaluationClaims(EvaluationClaimRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def claim(self, key: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        held = self._state.evaluation_claims.get(key)
        if held is not None and (held.finished or (held.holder != holder and held.lease_until >= now)):
            return False
        self._state.evaluation_claims[key] = _Claim(holder, lease_until)
        return True

    def finish(self, key: str, holder: str, now: datetime) -> None:
        held = self._state.evaluation_claims.get(key)
        if held is not None and held.holder == holder:
            held.finished = True

    def abandoned(self, now: datetime, limit: int) -> list[str]:
        expired = [(c.lease_until, key) for key, c in self._state.evaluation_claims.items() if not c.finished]
        return [key for lease_until, key in sorted(expired) if lease_until < now][:limit]

    def forget_before(self, moment: datetime) -> int:
        old = [key for key, c in self._state.evaluation_claims.items() if c.lease_until < moment]
        for key in old:
            del self._state.evaluation_claims[key]
        return len(old)


class FakeIdentities(IdentityRepository):
    def __init__(self, state: AccountsState) -> None:
        self._state = state

    def get(self, issuer: str, subject: str) -> ExternalIdentity | None:
        return self._state.identities.get((issuer, subject))

    def add(self, identity: ExternalIdentity) -> None:
        key = (identity.issuer, identity.subject)
        if key in self._state.identities:
            raise AlreadyExists("this provider login is linked to an account already")
        _hold_account(self._state, identity.user_id)
        self._state.identities[key] = identity

    def for_user(self, user_id: str) -> list[ExternalIdentity]:
        found = [each for each in self._state.identities.values() if each.user_id == user_id]
        return sorted(found, key=lambda each: (each.created_at, each.issuer, each.subject))

    def use_nonce(self, issuer: str, nonce: str, expires_at: datetime, now: datetime) -> bool:
        self._state.used_nonces = {k: v for k, v in self._state.used_nonces.items() if v > now}
        if (issuer, nonce) in self._state.used_nonces:
            return False
        self._state.used_nonces[(issuer, nonce)] = expires_at
        return True


class FakeIdentityProvider(IdentityProvider):
    """An OpenID Provider whose ID tokens are names for claims the test chose; the claims rules are the real ones.

    `issue(claims)` returns a token; `grant(token, verifier, redirect_uri)` a
    code the provider redeems once for it, given the same verifier and
    redirect URI. `down` makes every call Unavailable.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.tokens: dict[str, dict] = {}
        self.codes: dict[str, tuple[str, str, str]] = {}
        self.down = False

    def issue(self, claims: dict) -> str:
        token = f"token-{len(self.tokens) + 1}"
        self.tokens[token] = claims
        return token

    def grant(self, token: str, code_verifier: str, redirect_uri: str) -> str:
        code = f"code-{len(self.codes) + 1}"
        self.codes[code] = (token, code_verifier, redirect_uri)
        return code

    def redeem(self, code: str, code_verifier: str, redirect_uri: str) -> str:
        if self.down:
            raise Unavailable(f"the identity provider {self.settings.name} cannot be reached; try again")
        token, verifier, redirect = self.codes.pop(code, ("", "", ""))
        if not token or (verifier, redirect) != (code_verifier, redirect_uri):
            raise Unauthenticated(f"{self.settings.name} refused the authorization code (invalid_grant)")
        return token

    def verify(self, id_token: str, nonce: str, now: datetime) -> VerifiedIdentity:
        if self.down:
            raise Unavailable(f"the identity provider {self.settings.name} cannot be reached; try again")
        if id_token not in self.tokens:
            raise Unauthenticated(f"the ID token's signature does not verify with {self.settings.name}'s key")
        return check_claims(self.tokens[id_token], self.settings, nonce, now)


class FakeAccountsDatabase:
    """The committed account data, and the factory services call for a unit of work."""

    def __init__(self) -> None:
        self.state = AccountsState()
        self.units: list[FakeUnitOfWork] = []

    def __call__(self) -> FakeUnitOfWork:
        unit = FakeUnitOfWork(self)
        self.units.append(unit)
        return unit

    @property
    def commits(self) -> int:
        return sum(unit.commits for unit in self.units)

    # Read-only views of what is committed, for assertions.
    def user_named(self, username: str) -> User | None:
        return FakeUsers(self.state).get_by_username(username)

    def notifications_of(self, user_id: str) -> list[Notification]:
        return [s.notification for s in self.state.notifications if s.notification.user_id == user_id]


class FakeUnitOfWork(AccountsUnitOfWork):
    users: FakeUsers
    sessions: FakeSessions
    goals: FakeGoals
    notifications: FakeNotifications
    preferences: FakePreferences
    deliveries: FakeDeliveries
    identities: FakeIdentities
    login_failures: FakeLoginFailures
    address_failures: FakeAddressFailures
    evaluation_claims: FakeEvaluationClaims

    def __init__(self, database: FakeAccountsDatabase) -> None:
        self._database = database
        self.committed = False
        self.commits = 0
        self._begin()

    def _begin(self) -> None:
        self._working = copy.deepcopy(self._database.state)
        self.users = FakeUsers(self._working)
        self.sessions = FakeSessions(self._working)
        self.goals = FakeGoals(self._working)
        self.notifications = FakeNotifications(self._working)
        self.preferences = FakePreferences(self._working)
        self.deliveries = FakeDeliveries(self._working)
        self.identities = FakeIdentities(self._working)
        self.login_failures = FakeLoginFailures(self._working)
        self.address_failures = FakeAddressFailures(self._working)
        self.evaluation_claims = FakeEvaluationClaims(self._working)

    def __enter__(self) -> FakeUnitOfWork:
        self._begin()
        return self

    def commit(self) -> None:
        self._database.state = copy.deepcopy(self._working)
        self.committed = True
        self.commits += 1

    def rollback(self) -> None:
        # Whatever was not committed is discarded; committed data is untouched.
        self._begin()


# --- metrics ----------------------------------------------------------------


class FakeMetricStore(MetricStore):
    def __init__(self) -> None:
        # (user, metric, source, minute) -> (local day it was first placed on, value)
        self.minutes: dict[tuple[str, MetricKind, str, int], tuple[date, float]] = {}
        self.daily: dict[tuple[str, MetricKind, date], DaySummary] = {}

    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        # Every source's minutes of every day, not only of the days the write's lookups name.
        held: dict[tuple[MetricKind, date], set[int]] = {}
        for (user, metric, _, minute), (day, _) in self.minutes.items():
            if user == user_id:
                held.setdefault((metric, day), set()).add(minute)
        placed = place_minutes(Write.of(readings), held)
        for (metric, day), values in placed.items():
            for minute, value in values.items():
                self.minutes[(user_id, metric, source, minute)] = (day, float(value))
        return set(placed)

    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        by_source: dict[str, dict[int, float]] = {}
        for (user, kind, source, minute), (placed, value) in self.minutes.items():
            if user == user_id and kind == metric and placed == day:
                by_source.setdefault(source, {})[minute] = value
        return by_source

    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        for summary in summaries:
            self.daily[(user_id, MetricKind(metric), summary.day)] = summary

    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        found = [s for (user, kind, day), s in self.daily.items() if user == user_id and kind == metric]
        return sorted((s for s in found if start <= s.day <= end), key=lambda s: s.day)

    def delete_user(self, user_id: str) -> None:
        self.minutes = {k: v for k, v in self.minutes.items() if k[0] != user_id}
        self.daily = {k: v for k, v in self.daily.items() if k[0] != user_id}

    # Helpers for tests.
    def put_days(self, user_id: str, metric: MetricKind, *summaries: DaySummary) -> None:
        self.save_days(user_id, metric, summaries)

    def holds_anything_of(self, user_id: str) -> bool:
        return any(k[0] == user_id for k in self.minutes) or any(k[0] == user_id for k in self.daily)


class FakeReadingBus(ReadingBus):
    def __init__(self) -> None:
        self.cursors: dict[tuple[str, str], DeviceCursor] = {}
        self.published: list[AcceptedBatch] = []

    def submit(self, batches: Sequence[AcceptedBatch]) -> Future[list[str]]:
        outcomes = []
        for batch in batches:
            key = (batch.user_id, batch.source)
            if batch.sequence:
                cursor = self.cursors.get(key, DeviceCursor())
                if cursor.holds(batch.sequence):
                    outcomes.append(PublishOutcome.DUPLICATE)
                    continue
                self.cursors[key] = cursor.with_durable(batch.sequence)
            self.published.append(batch)
            outcomes.append(PublishOutcome.ACCEPTED)
        future: Future[list[str]] = Future()
        future.set_result(outcomes)
        return future

    def cursor(self, user_id: str, source: str) -> DeviceCursor:
        return self.cursors.get((user_id, source), DeviceCursor())

    def drain(self) -> list[AcceptedBatch]:
        """What the persister would consume next, as the topic hands it over."""
        batches, self.published = self.published, []
        return batches


# --- security and delivery --------------------------------------------------


class FakeHasher(PasswordHasher):
    """Cheap and transparent, but a wrong password never verifies."""

    PREFIX = b"fake-hash:"

    def __init__(self) -> None:
        self.wasted: list[str] = []

    def hash(self, password: str) -> bytes:
        return self.PREFIX + password.encode()

    def verify(self, password: str, password_hash: bytes) -> bool:
        return password_hash.startswith(self.PREFIX) and password_hash == self.hash(password)

    def waste_time(self, password: str) -> None:
        self.wasted.append(password)


class FakeCommonPasswords(CommonPasswords):
    """A handful of the real list's entries; tests/unit/test_account_security.py checks the real list."""

    WORDS = frozenset({"password", "password1", "iloveyou", "sunshine", "qwertyuiop", "baseball"})

    def __contains__(self, password: str) -> bool:
        return password.casefold() in self.WORDS


def make_signer(ttl: timedelta = ACCESS_TTL) -> JwtSigner:
    """The real signer: it does no I/O, so a fake would only hide bugs."""
    return JwtSigner(TOKEN_SECRET, ttl)


class FakeSink(NotificationSink):
    def __init__(self) -> None:
        self.delivered: list[Notification] = []

    def deliver(self, notification: Notification) -> None:
        self.delivered.append(notification)


class FakeNotificationQueue(NotificationQueue):
    """Keeps what was sent; with a dispatcher attached, hands it over at once, as the outbox does a moment later."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.dispatcher: Dispatcher | None = None

    def send(self, notifications: Sequence[Notification]) -> None:
        self.sent.extend(notifications)
        if self.dispatcher is not None:
            self.dispatcher.handle(list(notifications))


class FakePushChannel(PushChannel):
    """Answers each push from a script of outcomes (then DELIVERED), and keeps what it was asked to push."""

    def __init__(self, *script: PushResult) -> None:
        self.script = list(script)
        self.pushed: list[Notification] = []

    def push(self, notification: Notification) -> PushResult:
        self.pushed.append(notification)
        return self.script.pop(0) if self.script else PushResult(PushOutcome.DELIVERED, "HTTP 200")

    def fail_always(self, result: PushResult) -> None:
        self.script = [result] * 1000


class FakeDeadLetterLog(DeadLetterLog):
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def record(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)

    def read(self) -> list[DeadLetter]:
        return list(self.letters)


# --- the services wired to the fakes ----------------------------------------

PASSWORD = "correct horse battery"


@dataclass
class FakeApp:
    clock: FakeClock
    database: FakeAccountsDatabase
    store: FakeMetricStore
    bus: FakeReadingBus
    hasher: FakeHasher
    sink: FakeSink
    accounts: Accounts
    goals: Goals
    metrics: Metrics
    reports: Reports
    notifications: Notifications
    persister: Persister
    queue: FakeNotificationQueue
    dispatcher: Dispatcher
    observer: RecordingObserver

    def sign_up(self, username: str, time_zone: str = "UTC", password: str = PASSWORD) -> Principal:
        """Register and log in; the principal the session's access token authenticates as."""
        self.accounts.register(username, password, ProfileChanges(time_zone=time_zone))
        session = self.accounts.login(username, password)
        return self.accounts.authenticate(session.access_token)

    def upload(self, principal: Principal, readings: Sequence[tuple[int, int, float]], device_id: str = "watch-1"):
        """Validate, publish and persist one batch the way the server and the persister do."""
        ingest = self.metrics.open_ingest(principal)
        batch = ingest.check(RawBatch(device_id, 0, readings))
        ingest.publish([batch])
        self.persister.apply(self.bus.drain())
        return batch


class RecordingObserver(Observer):
    """What the services reported, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def saw(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [event for event in self.events if isinstance(event, kind)]

    def clear(self) -> None:
        self.events.clear()


def fake_app(now: datetime = datetime(2026, 6, 10, 12, 0, tzinfo=UTC), config: Config | None = None) -> FakeApp:
    """The embedded wiring (fittrack.app.wiring) on in-memory stores, at a clock the test moves."""
    config = config or Config()
    clock = FakeClock(now)
    database = FakeAccountsDatabase()
    store = FakeMetricStore()
    bus = FakeReadingBus()
    hasher = FakeHasher()
    sink = FakeSink()
    queue = FakeNotificationQueue()
    stores = Stores(database, database, database, store, bus, closers=[], notification_queue=queue)
    observer = RecordingObserver()
    services = build_services(
        stores,
        config,
        clock,
        hasher=hasher,
        signer=make_signer(),
        common_passwords=FakeCommonPasswords(),
        observer=observer,
    )
    queue.dispatcher = dispatcher_on(stores, sink, config, clock, observer)
    return FakeApp(
        clock=clock,
        database=database,
        store=store,
        bus=bus,
        hasher=hasher,
        sink=sink,
        accounts=services.accounts,
        goals=services.goals,
        metrics=services.metrics,
        reports=services.reports,
        notifications=services.notifications,
        persister=persister_on(stores, clock),
        queue=queue,
        dispatcher=queue.dispatcher,
        observer=observer,
    )
