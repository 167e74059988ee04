"""Applying accepted batches to the metric store: the persister's handler.

Everything here is idempotent, because a worker may apply the same batch
again after a crash (between its write and its offset commit) or when the
topic is replayed: minute values are replaced, daily summaries recomputed
from them, and goal-met notifications, which go to the notification queue,
are deduplicated by key where the dispatcher stores them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context

from fittrack.core.domain.accounts import User
from fittrack.core.domain.aggregation import summarize_sources
from fittrack.core.domain.calendar import local_today, zone_named
from fittrack.core.domain.goals import Goal
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind, goal_met_key, goal_met_message
from fittrack.core.domain.sequences import LogPosition, first_in_log
from fittrack.core.ports import AccountsUnitOfWork, BatchClaims, MetricStore, NotificationQueue


class Persister:
    # Keys of goal-met notifications this process has queued: once a goal is met, every later batch
    # of its metric meets it again, and the queue need not carry what the dispatcher would drop.
    SENT_KEYS_LIMIT = 100_000

    def __init__(
        self,
        store: MetricStore,
        uow: Callable[[], AccountsUnitOfWork],
        queue: NotificationQueue,
        clock: Callable[[], datetime],
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._store = store
        self._uow = uow
        self._queue = queue
        self._now = clock
        self._tracer = tracer or trace.NoOpTracer()
        self._sent_keys: dict[str, None] = {}

    def apply(self, batches: Sequence[AcceptedBatch], traces: Mapping[str, Context] | None = None) -> None:
        """Store the batches; `traces` holds, by user id, the trace context a user's goal check joins (and so
        the goal-met notifications it queues, and their delivery), when the user's batches were traced."""
        users = self._existing_users({batch.user_id for batch in batches})
        touched: dict[str, set[tuple[MetricKind, date]]] = defaultdict(set)
        # One commit for the whole chunk where the store has transactions: a
        # commit (an fsync on SQLite) costs more than the writes of a user.
        with self._store.grouped():
            for (user_id, source), readings in _by_source(batches).items():
                # A batch still in flight when its account was deleted has no one to belong to.
                if user_id in users:
                    touched[user_id] |= self._store.upsert_minutes(user_id, source, readings)
            for user_id, pairs in touched.items():
                by_metric: dict[MetricKind, list[date]] = defaultdict(list)
                for metric, day in pairs:
                    by_metric[metric].append(day)
                for metric, days in by_metric.items():
                    summaries = [
                        summarize_sources(metric, day, self._store.minutes_of_day(user_id, metric, day))
                        for day in sorted(days)
                    ]
                    self._store.save_days(user_id, metric, summaries)
        # After the commit, so that a goal is only ever met on stored figures (and, embedded, because the
        # accounts share the store's connection, which holds one transaction at a time).
        for user_id, pairs in touched.items():
            context = traces.get(user_id) if traces else None
            if context is None:
                self._notify_goals_met(users[user_id], {metric for metric, _ in pairs})
                continue
            with self._tracer.start_as_current_span("fittrack.goal_check", context=context):
                self._notify_goals_met(users[user_id], {metric for metric, _ in pairs})

    def _existing_users(self, user_ids: set[str]) -> dict[str, User]:
        with self._uow() as uow:
            found = {user_id: uow.users.get(user_id) for user_id in user_ids}
        return {user_id: user for user_id, user in found.items() if user is not None}

    def _notify_goals_met(self, user: User, metrics: set[MetricKind]) -> None:
        with self._uow() as uow:
            goals = [g for g in uow.goals.list_for_user(user.user_id) if g.metric in metrics]
        if not goals:
            return
        now = self._now()
        today = local_today(zone_named(user.profile.time_zone), now)
        met = [n for n in (self._goal_met(goal, today, now) for goal in goals) if n is not None]
        fresh = [n for n in met if n.idempotency_key not in self._sent_keys]
        if not fresh:
            return
        # Unavailable propagates: the batches are applied again later, and this is sent then.
        self._queue.send(fresh)
        for notification in fresh:
            self._sent_keys[notification.idempotency_key] = None
        while len(self._sent_keys) > self.SENT_KEYS_LIMIT:
            del self._sent_keys[next(iter(self._sent_keys))]

    def _goal_met(self, goal: Goal, today: date, now: datetime) -> Notification | None:
        """A notification when the goal's current period is met, else None.

        Only the current period counts: a backlog of old readings must not
        congratulate the user for last March.
        """
        start, end = goal.period.bounds(today)
        reached = sum(d.value for d in self._store.days(goal.user_id, goal.metric, start, end))
        if reached < goal.target:
            return None
        title, body = goal_met_message(goal, reached)
        return Notification(
            notification_id=uuid.uuid4().hex,
            user_id=goal.user_id,
            kind=NotificationKind.GOAL_MET,
            title=title,
            body=body,
            created_at=now,
            idempotency_key=goal_met_key(goal, start),
            goal_id=goal.goal_id,
        )


def _by_source(batches: Sequence[AcceptedBatch]) -> dict[tuple[str, str], list[PlacedReading]]:
    """One write per user and source for the whole chunk: the store's cost is per call, not per reading.

    The readings stay in arrival order, so the store gives a repeated minute
    its latest value and the local day it came with first.
    """
    readings: dict[tuple[str, str], list[PlacedReading]] = defaultdict(list)
    for batch in batches:
        readings[(batch.user_id, batch.source)].extend(batch.readings)
    return readings


class FirstCopies:
    """The production persister's filter: of the copies of a numbered batch in the log, only the first counts.

    The server answers every later copy DUPLICATE, so applying one would change
    what the device was told is already stored (domain.sequences.first_in_log).
    The claims are recorded before the write: a crash in between replays the
    same first copy, whose claim then matches its own position.
    """

    # A copy of a batch can reach the log only while its device resends it, and be read again only while the
    # topic holds it: the `readings` topic keeps a week.
    KEEP = timedelta(days=7)
    FORGET_EVERY = timedelta(hours=1)

    def __init__(self, claims: BatchClaims, clock: Callable[[], datetime]) -> None:
        self._claims = claims
        self._now = clock
        self._forgot_at: datetime | None = None

    def counted(self, logged: Sequence[tuple[AcceptedBatch, LogPosition]]) -> list[AcceptedBatch]:
        """The batches to apply, in log order; a batch without a sequence always counts."""
        firsts = first_in_log([(batch.key, position) for batch, position in logged if batch.sequence])
        recorded = self._claims.claim(firsts, self._now())
        return [batch for batch, position in logged if not batch.sequence or recorded.get(batch.key) == position]

    def forget_expired(self) -> int:
        """At most once an hour, drop the claims no copy can follow any more; how many went."""
        now = self._now()
        if self._forgot_at is not None and now - self._forgot_at < self.FORGET_EVERY:
            return 0
        self._forgot_at = now
        return self._claims.forget_before(now - self.KEEP)
