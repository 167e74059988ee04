"""The dispatcher: stores new notifications once, fans them out to open streams, and pushes them to devices.

Notifications reach `Dispatcher.handle` from the queue (the `notifications`
topic, or the embedded outbox), possibly more than once: a dispatcher that
crashes before its offset commit is handed the same notifications again.
Storing deduplicates them by idempotency key, so the app shows each once;
the live copy and the push are triggered only for a notification stored by
this call or whose push is still pending, and a push that is repeated (the
crash came mid-push) carries the same notification id as its key. So: exactly
once in the app, at least once to the push channel with a stable key.

Pushes are recorded as deliveries in the same transaction as the
notification, then claimed with a lease and tried; a failure is retried with
exponential backoff and full jitter, and after the last attempt the delivery
is dead: a dead letter operators list and replay (DeadLetters).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from fittrack.core.domain.accounts import User
from fittrack.core.domain.calendar import local_today, zone_named
from fittrack.core.domain.delivery import (
    DeadLetter,
    Delivery,
    DeliveryState,
    PushOutcome,
    PushResult,
    RetryPolicy,
    push_due_at,
)
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.events import NotificationDeadLettered, NotificationPushed, NotificationsStored, PushRetried
from fittrack.core.domain.goals import Goal
from fittrack.core.domain.notifications import (
    DAILY_NUDGE_CAP,
    Notification,
    NotificationKind,
    NotificationPreferences,
)
from fittrack.core.ports import AccountsUnitOfWork, DeadLetterLog, NotificationSink, Observer, PushChannel, Unobserved

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    push_timeout_seconds: float = 5.0
    push_chunk: int = 16  # deliveries claimed, and pushed side by side, at a time

    @property
    def lease_seconds(self) -> float:
        """How long a claimed delivery is left alone: longer than its push can take, so only a dead
        dispatcher's claims run out."""
        return 2 * self.push_timeout_seconds + 1


class Dispatcher:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        live: NotificationSink,
        clock: Callable[[], datetime],
        push: PushChannel | None = None,
        dead_letters: DeadLetterLog | None = None,
        settings: DispatchSettings | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._uow = uow
        self._live = live
        self._now = clock
        self._push = push
        self._dead_letters = dead_letters
        self._settings = settings or DispatchSettings()
        self._rng = rng or random.Random()
        # Told what was stored, pushed, retried and given up, once each is committed.
        self._observer = observer or Unobserved()

    @property
    def pushes(self) -> bool:
        return self._push is not None

    def handle(self, notifications: Sequence[Notification]) -> list[Notification]:
        """Store, fan out and push a chunk from the queue; returns the notifications newly stored."""
        if not notifications:
            return []
        now = self._now()
        fresh: list[Notification] = []
        again: list[Notification] = []
        with self._uow() as uow:
            users = uow.users.get_many(list({n.user_id for n in notifications}))
            preferences = uow.preferences.get_many(list(users))
            goals = uow.goals.get_many(list({n.goal_id for n in notifications if n.goal_id}))
            zones = {user_id: _zone_of(user) for user_id, user in users.items()}
            wanted = [
                _with_local_date(n, zones[n.user_id])
                for n in notifications
                if _wanted(n, users.get(n.user_id), preferences, goals)
            ]
            nudges = uow.notifications.count_on_days(
                NotificationKind.BEHIND_GOAL,
                list({(n.user_id, n.local_date) for n in wanted if n.kind is NotificationKind.BEHIND_GOAL}),
            )
            seen: list[Notification] = []
            for notification in wanted:
                day = (notification.user_id, notification.local_date)
                nudge = notification.kind is NotificationKind.BEHIND_GOAL
                # Counted from what is stored, so the cap holds across evaluator runs and processes.
                if nudge and nudges[day] >= DAILY_NUDGE_CAP:
                    continue
                if not uow.notifications.add(notification):
                    seen.append(notification)
                    continue
                fresh.append(notification)
                if nudge:
                    nudges[day] += 1
                if self._push is not None:
                    due = push_due_at(preferences[notification.user_id], zones[notification.user_id], now)
                    uow.deliveries.add(Delivery(notification.notification_id, notification.user_id, due, now))
            if seen and self._push is not None:
                # Handed over again after a crash before the push was settled: finish what that run began.
                pending = uow.deliveries.get_many([n.notification_id for n in seen])
                again = [
                    n
                    for n in seen
                    if n.notification_id in pending and pending[n.notification_id].state is DeliveryState.PENDING
                ]
            uow.commit()
        if fresh:
            self._observer.saw(NotificationsStored(len(fresh)))
        self._fan_out(fresh + again)
        if self._push is not None and (fresh or again):
            try:
                self.push_due([n.notification_id for n in fresh + again])
            except Exception:  # noqa: BLE001 - stored and pending: the retry loop pushes them
                log.warning("could not push %d new notifications now; the retry loop will", len(fresh), exc_info=True)
        return fresh

    def _fan_out(self, notifications: list[Notification]) -> None:
        for notification in notifications:
            try:
                self._live.deliver(notification)
            except Exception:  # noqa: BLE001 - the stored notification is what counts; ListNotifications shows it
                log.warning(
                    "could not send notification %s to open streams", notification.notification_id, exc_info=True
                )

    def push_due(self, notification_ids: Sequence[str] | None = None) -> int:
        """Claim the deliveries due now (of these notifications, when named), push them, settle them.

        Returns how many it claimed; the chunk size means there may be more.
        """
        if self._push is None:
            return 0
        now = self._now()
        lease_until = now + timedelta(seconds=self._settings.lease_seconds)
        with self._uow() as uow:
            claimed = uow.deliveries.claim(now, lease_until, self._settings.push_chunk, notification_ids)
            uow.commit()
        if claimed:
            self._settle(claimed, self._push_all(claimed))
        return len(claimed)

    def seconds_until_due(self) -> float | None:
        """How long until the earliest pending push is due (0 or less: already); None when none is pending."""
        if self._push is None:
            return None
        with self._uow() as uow:
            due = uow.deliveries.next_due()
        return None if due is None else (due - self._now()).total_seconds()

    def _push_all(self, claimed: list[tuple[Delivery, Notification]]) -> list[PushResult | None]:
        """Each claimed delivery's result; None for one past its last attempt, which is not tried again."""
        push = self._push
        assert push is not None
        last = self._settings.retry.max_attempts

        def one(pair: tuple[Delivery, Notification]) -> PushResult | None:
            delivery, notification = pair
            if delivery.attempts > last:
                return None
            try:
                return push.push(notification)
            except Exception as error:  # noqa: BLE001 - a broken channel is a failed attempt, not a dead dispatcher
                log.warning("push channel failed", exc_info=True)
                return PushResult(PushOutcome.RETRY, f"push failed: {error!r}")

        if len(claimed) == 1:
            return [one(claimed[0])]
        # Side by side, so a chunk takes one timeout at worst and finishes well within its lease.
        with ThreadPoolExecutor(max_workers=len(claimed), thread_name_prefix="push") as pool:
            return list(pool.map(one, claimed))

    def _settle(self, claimed: list[tuple[Delivery, Notification]], results: list[PushResult | None]) -> None:
        now = self._now()
        policy = self._settings.retry
        letters: list[DeadLetter] = []
        settled_events: list = []
        with self._uow() as uow:
            retrying = {d.user_id for (d, _), r in zip(claimed, results, strict=True) if _retries(d, r, policy)}
            users = uow.users.get_many(list(retrying))
            preferences = uow.preferences.get_many(list(retrying))
            for (delivery, notification), result in zip(claimed, results, strict=True):
                letter = None
                if result is not None and result.outcome is PushOutcome.DELIVERED:
                    settled = replace(
                        delivery, state=DeliveryState.DELIVERED, due_at=now, updated_at=now, last_error=""
                    )
                    event = NotificationPushed()
                elif _retries(delivery, result, policy):
                    assert result is not None
                    wait = timedelta(seconds=policy.delay(delivery.attempts, self._rng))
                    # A retry must not land inside the quiet hours either.
                    due = push_due_at(preferences[delivery.user_id], _zone_of(users.get(delivery.user_id)), now + wait)
                    settled = replace(delivery, due_at=due, updated_at=now, last_error=result.detail)
                    event = PushRetried()
                else:
                    error = result.detail if result is not None else _interrupted(delivery)
                    settled = replace(delivery, state=DeliveryState.DEAD, due_at=now, updated_at=now, last_error=error)
                    letter = DeadLetter(notification, delivery.attempts, error, now)
                    event = NotificationDeadLettered()
                # False when the lease ran out and another dispatcher took the delivery: its to report.
                if not uow.deliveries.settle(settled):
                    continue
                settled_events.append(event)
                if letter is not None:
                    letters.append(letter)
                    log.warning(
                        "notification %s is a dead letter after %d attempts: %s",
                        notification.notification_id,
                        letter.attempts,
                        letter.last_error,
                    )
            # Before the commit, so that every dead delivery is in the log: if recording fails, nothing is
            # settled, and the deliveries come back when their lease ends (one past its last attempt is not
            # pushed again; a permanent failure is tried once more), to be recorded then.
            if letters and self._dead_letters is not None:
                self._dead_letters.record(letters)
            uow.commit()
        for event in settled_events:
            self._observer.saw(event)


class DeadLetters:
    """What operators see of pushes that failed for good, and how they send them again."""

    def __init__(
        self, uow: Callable[[], AccountsUnitOfWork], clock: Callable[[], datetime], log: DeadLetterLog | None = None
    ) -> None:
        self._uow = uow
        self._now = clock
        self._log = log

    def list(self, limit: int = 1000) -> list[DeadLetter]:
        """Most recently failed first: the dead deliveries, and with a log also what it recorded, each with
        its delivery's state now (so a replayed one shows as pending or delivered)."""
        latest: dict[str, DeadLetter] = {}
        for letter in self._log.read() if self._log is not None else []:
            # A notification replayed and dead again is in the log twice: its latest failure counts.
            latest.pop(letter.notification.notification_id, None)
            latest[letter.notification.notification_id] = letter
        with self._uow() as uow:
            deliveries = uow.deliveries.get_many(list(latest))
            # Also those the log no longer holds (past the topic's retention): the database is the record.
            dead = uow.deliveries.dead(limit)
        # A delivery that is gone went with its user's account: nothing left to replay.
        letters = {i: replace(letter, state=deliveries[i].state) for i, letter in latest.items() if i in deliveries}
        for delivery, notification in dead:
            if delivery.notification_id not in letters:
                letters[delivery.notification_id] = DeadLetter(
                    notification, delivery.attempts, delivery.last_error, delivery.updated_at, delivery.state
                )
        return sorted(letters.values(), key=lambda letter: letter.failed_at, reverse=True)[:limit]

    def replay(self, notification_ids: Sequence[str] | None) -> list[str]:
        """Make these dead letters (all with None) pending and due now; the ids that were dead letters."""
        with self._uow() as uow:
            replayed = uow.deliveries.replay(notification_ids, self._now())
            uow.commit()
        return replayed


def _interrupted(delivery: Delivery) -> str:
    """Why a delivery claimed past its last attempt is dead: its dispatchers died during the attempts."""
    error = f"the dispatcher stopped during attempt {delivery.attempts - 1}; not tried again"
    return f"{error} (before that: {delivery.last_error})" if delivery.last_error else error


def _retries(delivery: Delivery, result: PushResult | None, policy: RetryPolicy) -> bool:
    return result is not None and result.outcome is PushOutcome.RETRY and delivery.attempts < policy.max_attempts


def _wanted(
    notification: Notification,
    user: User | None,
    preferences: dict[str, NotificationPreferences],
    goals: dict[str, Goal],
) -> bool:
    if user is None:
        return False  # the account was deleted while the notification was on its way
    if not preferences[notification.user_id].enabled:
        return False
    if notification.goal_id:
        goal = goals.get(notification.goal_id)
        return goal is not None and goal.notify
    return True


def _with_local_date(notification: Notification, zone: tzinfo) -> Notification:
    """A nudge counts towards the user's local day of its creation unless the evaluator said which."""
    if notification.kind is not NotificationKind.BEHIND_GOAL or notification.local_date is not None:
        return notification
    return replace(notification, local_date=local_today(zone, notification.created_at))


def _zone_of(user: User | None) -> tzinfo:
    if user is None:
        return UTC
    try:
        return zone_named(user.profile.time_zone)
    except InvalidArgument:
        return UTC
