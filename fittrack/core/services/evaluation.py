"""Goal evaluation at the users' local slot times, and the Monday report notice, in batches.

Work goes one time zone at a time, a page of users at a time: one query for
the page's goals, one for their preferences, one for their daily totals, one
send of the page's notifications. Nothing here is per user.

Several evaluator processes share the work through claims in the account
database (WorkClaims): each zone's slot is done by whoever claims it first.
A claim is a lease renewed after every page; when an evaluator stops mid-way
its lease runs out and the next run of any evaluator takes the slot over, as
long as the slot is at most `retry_for` old (an older nudge would be stale).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time as clock_time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from fittrack.core.domain.calendar import week_of, zone_named
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.evaluation import (
    DEFAULT_ACTIVE_DAY,
    DEFAULT_REPORT_READY_AT,
    DEFAULT_SLOTS,
    REPORT,
    SLOT,
    EvaluationWork,
    UserGoals,
    nudges,
    parse_clock_times,
    report_ready,
    slot_instants,
    slot_moment,
)
from fittrack.core.domain.events import EvaluationSlotRun
from fittrack.core.domain.goals import Goal
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.ports import AccountsUnitOfWork, MetricStore, NotificationQueue, Observer, Unobserved

log = logging.getLogger(__name__)

MONDAY = 0


@dataclass(frozen=True)
class EvaluationSettings:
    slots: tuple[time, ...] = DEFAULT_SLOTS
    active_day: tuple[time, time] = DEFAULT_ACTIVE_DAY
    report_ready_at: time | None = DEFAULT_REPORT_READY_AT  # Mondays; None: no notice
    page_size: int = 2000
    # How long after its moment a slot another evaluator left unfinished is still taken over.
    retry_for: timedelta = timedelta(hours=1)


@dataclass
class RunSummary:
    """What one run did, for logs and the benchmark."""

    slots: int = 0
    users: int = 0
    goals: int = 0
    notifications: int = 0
    report_notices: int = 0
    zones: list[str] = field(default_factory=list)

    def add(self, other: RunSummary) -> None:
        self.slots += other.slots
        self.users += other.users
        self.goals += other.goals
        self.notifications += other.notifications
        self.report_notices += other.report_notices


class WorkClaims:
    """Claims on evaluation work in the account database, held by one evaluator (`holder`)."""

    ABANDONED_PER_RUN = 100

    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(minutes=5),
        holder: str | None = None,
    ) -> None:
        self._uow = uow
        self._now = clock
        self._lease = lease
        # Unique per process and start: a restarted evaluator must not think it still holds its old claims.
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def take(self, work: EvaluationWork) -> bool:
        """Claim the work, or renew this holder's claim on it; False when another evaluator has it or it is done."""
        now = self._now()
        with self._uow() as uow:
            taken = uow.evaluation_claims.claim(work.key, self.holder, now, now + self._lease)
            uow.commit()
        return taken

    def finish(self, work: EvaluationWork) -> None:
        with self._uow() as uow:
            uow.evaluation_claims.finish(work.key, self.holder, self._now())
            uow.commit()

    def abandoned(self) -> list[EvaluationWork]:
        """Work whose evaluator stopped before finishing it, as far as this version knows such work."""
        with self._uow() as uow:
            keys = uow.evaluation_claims.abandoned(self._now(), self.ABANDONED_PER_RUN)
        return [work for work in map(EvaluationWork.from_key, keys) if work is not None]


@dataclass(frozen=True)
class _Page:
    """One page of a zone's users with goals to watch, and what judging them needs."""

    goals: dict[str, list[Goal]]  # by user, in user order
    preferences: dict
    totals: dict

    @property
    def goal_count(self) -> int:
        return sum(map(len, self.goals.values()))

    @property
    def last_user(self) -> str:
        return next(reversed(self.goals))


class GoalEvaluator:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        store: MetricStore,
        queue: NotificationQueue,
        clock: Callable[[], datetime],
        settings: EvaluationSettings = EvaluationSettings(),
        claims: WorkClaims | None = None,
        observer: Observer | None = None,
    ) -> None:
        """`claims` shares the work with other evaluators; without it this one does all of it."""
        self._uow = uow
        self._store = store
        self._queue = queue
        self._now = clock
        self._settings = settings
        self._claims = claims
        self._observer = observer or Unobserved()  # told each slot run: its users and how long it took

    def run_due(self, since: datetime, until: datetime) -> RunSummary:
        """Evaluate every slot, in every user's zone, whose moment falls in (since, until], and the work
        other evaluators left unfinished.

        A slot evaluated twice makes the same notifications, which the
        dispatcher drops as duplicates: overlapping windows are harmless.
        """
        summary = RunSummary()
        for work in self._abandoned() + self._due(since, until):
            if self._claims is not None and not self._claims.take(work):
                continue
            summary.add(self._perform(work))
            summary.zones.append(work.zone)
            if self._claims is not None:
                self._claims.finish(work)
        return summary

    def _due(self, since: datetime, until: datetime) -> list[EvaluationWork]:
        with self._uow() as uow:
            goal_zones = uow.goals.zones_with_notified_goals()
            all_zones = uow.users.time_zones() if self._settings.report_ready_at else []
        due = [
            EvaluationWork(SLOT, name, day, slot)
            for name in goal_zones
            for day, slot in slot_instants(zone_named(name), self._settings.slots, since, until)
        ]
        if self._settings.report_ready_at is not None:
            due += [
                EvaluationWork(REPORT, name, day, at)
                for name in all_zones
                for day, at in slot_instants(zone_named(name), (self._settings.report_ready_at,), since, until)
                if day.weekday() == MONDAY
            ]
        return due

    def _abandoned(self) -> list[EvaluationWork]:
        if self._claims is None:
            return []
        oldest = self._now() - self._settings.retry_for
        fresh = []
        for work in self._claims.abandoned():
            if work.moment() >= oldest:
                fresh.append(work)
            elif self._claims.take(work):
                log.warning("giving up %s, left unfinished by another evaluator: too old to nudge about", work.key)
                self._claims.finish(work)
        if fresh:
            log.info("taking over %d pieces of work other evaluators left unfinished", len(fresh))
        return fresh

    def _perform(self, work: EvaluationWork) -> RunSummary:
        if work.kind == REPORT:
            return self.announce_reports(work.zone, work.day, self._still_ours(work))
        return self.evaluate_slot(work.zone, work.day, work.at, self._still_ours(work))

    def _still_ours(self, work: EvaluationWork) -> Callable[[], bool]:
        """Renews the claim between pages; False when another evaluator took the work over meanwhile."""
        claims = self._claims
        if claims is None:
            return lambda: True

        def renewed() -> bool:
            if claims.take(work):
                return True
            log.warning("%s was taken over by another evaluator; leaving it to them", work.key)
            return False

        return renewed

    def evaluate_slot(
        self, zone_name: str, day: date, slot: time, still_ours: Callable[[], bool] = lambda: True
    ) -> RunSummary:
        """The nudges of one slot for every user of one zone with goals to watch."""
        started = clock_time.monotonic()
        zone = zone_named(zone_name)
        as_of = max(self._now(), slot_moment(zone, day, slot))
        summary = RunSummary(slots=1)
        # Weekly goals need the week so far; daily ones only the day.
        first = min(day, week_of(day)[0])
        # The next page is read while this one is judged and sent: the reads wait on the databases and
        # the judging on Python, so overlapping them takes a slot of 100,000 users from 12 s to under 10.
        with ThreadPoolExecutor(1, thread_name_prefix="evaluation-reads") as reads:
            upcoming = reads.submit(self._read_page, zone_name, "", first, day)
            while (page := upcoming.result()) is not None:
                upcoming = reads.submit(self._read_page, zone_name, page.last_user, first, day)
                made = []
                for user_id, own in page.goals.items():
                    user = UserGoals(user_id, zone, page.preferences[user_id], own, page.totals.get(user_id, {}))
                    made.extend(nudges(user, day, slot, as_of, self._settings.active_day))
                if made:
                    self._queue.send(made)
                summary.users += len(page.goals)
                summary.goals += page.goal_count
                summary.notifications += len(made)
                if not still_ours():
                    break
        log.info(
            "evaluated %s %s %s: %d users, %d goals, %d behind",
            zone_name,
            day,
            slot.strftime("%H:%M"),
            summary.users,
            summary.goals,
            summary.notifications,
        )
        self._observer.saw(EvaluationSlotRun(summary.users, clock_time.monotonic() - started))
        return summary

    def _read_page(self, zone_name: str, after: str, first: date, day: date) -> _Page | None:
        """The goals, preferences and daily totals of the zone's next page of users after `after`; None at the end."""
        with self._uow() as uow:
            goals = uow.goals.notified_goals_in_zone(zone_name, after, self._settings.page_size)
            if not goals:
                return None
            by_user: dict[str, list[Goal]] = defaultdict(list)
            for goal in goals:
                by_user[goal.user_id].append(goal)
            preferences = uow.preferences.get_many(list(by_user))
        metrics = sorted({goal.metric for goal in goals})
        totals = self._store.daily_totals(list(by_user), metrics, first, day)
        return _Page(by_user, preferences, totals)

    def announce_reports(
        self, zone_name: str, monday: date, still_ours: Callable[[], bool] = lambda: True
    ) -> RunSummary:
        """Monday's notice that last week's report is ready, to every user of one zone who takes notifications."""
        zone = zone_named(zone_name)
        report_at = self._settings.report_ready_at or DEFAULT_REPORT_READY_AT
        as_of = max(self._now(), slot_moment(zone, monday, report_at))
        week_start = monday - timedelta(days=7)
        summary = RunSummary()
        after = ""
        while True:
            with self._uow() as uow:
                ids = uow.users.ids_in_zone(zone_name, after, self._settings.page_size)
                if not ids:
                    break
                preferences = uow.preferences.get_many(ids)
            wanted = [user_id for user_id in ids if preferences[user_id].enabled]
            steps = self._store.daily_totals(wanted, [MetricKind.STEPS], week_start, week_start + timedelta(days=6))
            made = [
                report_ready(user_id, week_start, sum(steps.get(user_id, {}).get(MetricKind.STEPS, {}).values()), as_of)
                for user_id in wanted
            ]
            if made:
                self._queue.send(made)
            summary.report_notices += len(made)
            after = ids[-1]
            if not still_ours():
                break
        return summary


def parse_settings(slots: str, report_ready_at: str, active_day: str) -> EvaluationSettings:
    """Settings from their configuration text ("off" turns the Monday notice off); InvalidArgument otherwise."""
    report = None
    if report_ready_at.strip().lower() not in ("", "off"):
        report = parse_clock_times(report_ready_at, "FITTRACK_REPORT_READY_TIME")[0]
    bounds = parse_clock_times(active_day, "FITTRACK_ACTIVE_DAY")
    if len(bounds) != 2:
        raise InvalidArgument("FITTRACK_ACTIVE_DAY needs a start and an end such as 07:00,22:00")
    return EvaluationSettings(
        slots=parse_clock_times(slots, "FITTRACK_EVALUATION_TIMES"),
        active_day=(bounds[0], bounds[1]),
        report_ready_at=report,
    )
