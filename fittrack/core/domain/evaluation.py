"""The behind-pace rule: when a user is behind a goal, by how much, and what would close the gap.

The rule. A day's goal is paced over the user's active day, 07:00 to 22:00
local time by default: by a given local time the user "should" have reached
the target times the fraction of the active day that has passed (none before
07:00, all of it from 22:00). A weekly goal is paced over the user's week,
Monday to Sunday: each finished day counts as a seventh, and today as a
seventh times the fraction of its active day that has passed. The user is
behind when they are short of that pace by at least 2% of the target (a
smaller gap is rounding, not worth a message) and have not met the target.

Evaluation runs at slots: configured local times, by default 11:00, 16:00
and 20:00, in each user's own time zone. A slot makes at most one nudge per
goal (its key names goal, local day and slot) and at most DAILY_NUDGE_CAP per
user, the goals furthest behind first; the dispatcher enforces the cap again
across slots.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fittrack.core.domain.calendar import week_of, zone_named
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.notifications import (
    DAILY_NUDGE_CAP,
    Notification,
    NotificationKind,
    NotificationPreferences,
    behind_goal_key,
    report_ready_key,
)

DEFAULT_SLOTS = (time(11, 0), time(16, 0), time(20, 0))
DEFAULT_ACTIVE_DAY = (time(7, 0), time(22, 0))
# Monday morning: the weekly report of the week that just ended is ready.
DEFAULT_REPORT_READY_AT = time(8, 0)
BEHIND_TOLERANCE = 0.02

# Namespace for notification ids made from their idempotency key: evaluating
# a slot again gives the same id, which push receivers can deduplicate on.
_IDS = uuid.UUID("6c1f6a52-3a57-4df2-9d55-3f1b2e0c7a11")


def notification_id(user_id: str, key: str) -> str:
    return uuid.uuid5(_IDS, f"{user_id}\n{key}").hex


def parse_clock_times(text: str, what: str) -> tuple[time, ...]:
    """ "11:00,16:00,20:00" -> sorted distinct times; INVALID_ARGUMENT naming `what` otherwise."""
    found = set()
    for part in text.split(","):
        part = part.strip()
        try:
            moment = time.fromisoformat(part)
        except ValueError:
            raise InvalidArgument(f"{what}: {part!r} is not a local time such as 16:00") from None
        found.add(moment.replace(microsecond=0))
    if not found:
        raise InvalidArgument(f"{what} names no time")
    return tuple(sorted(found))


def active_fraction(local: time, active_day: tuple[time, time] = DEFAULT_ACTIVE_DAY) -> float:
    """How much of the active day has passed at wall-clock time `local`, 0 to 1."""
    start, end = (_seconds(t) for t in active_day)
    return min(max((_seconds(local) - start) / (end - start), 0.0), 1.0)


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def expected_by(
    goal: Goal, day: date, local: time, active_day: tuple[time, time] = DEFAULT_ACTIVE_DAY
) -> tuple[float, date]:
    """What the goal's pace asks for by `local` on `day`, and the first day of the goal's period."""
    today = active_fraction(local, active_day)
    if goal.period is GoalPeriod.DAILY:
        return goal.target * today, day
    monday, _ = week_of(day)
    return goal.target * ((day - monday).days + today) / 7, monday


@dataclass(frozen=True)
class Standing:
    goal: Goal
    current: float
    expected: float

    @property
    def gap(self) -> float:
        return self.expected - self.current

    @property
    def met(self) -> bool:
        return self.current >= self.goal.target

    @property
    def behind(self) -> bool:
        return not self.met and self.gap >= BEHIND_TOLERANCE * self.goal.target


def standing(
    goal: Goal,
    day: date,
    local: time,
    totals: Mapping[date, float],
    active_day: tuple[time, time] = DEFAULT_ACTIVE_DAY,
) -> Standing:
    """Where the goal stands at `local` on `day`, given the user's daily totals of that metric."""
    expected, first = expected_by(goal, day, local, active_day)
    current = sum(value for d, value in totals.items() if first <= d <= day)
    return Standing(goal, current, expected)


def gap_closer(metric: MetricKind, gap: float) -> str:
    """What would close the gap at an easy pace (MetricKind.per_walking_minute); empty if walking would not."""
    if metric.per_walking_minute is None:
        return ""
    minutes = max(math.ceil(gap / metric.per_walking_minute), 1)
    if metric is MetricKind.ACTIVE_MINUTES:
        return f"{minutes} active minutes would close the gap."
    if metric.shown_unit != metric.unit:  # distance: people read km, not metres
        return f"Walking {metric.shown(gap):.1f} {metric.shown_unit} (about {minutes} minutes) would close the gap."
    return f"A brisk walk of {minutes} minutes would close the gap."


def behind_message(place: Standing, local: time) -> tuple[str, str]:
    goal = place.goal
    span = "today" if goal.period is GoalPeriod.DAILY else "this week"
    unit = goal.metric.unit
    title = f"Behind on your {goal.metric.label} goal"
    body = (
        f"By {local.strftime('%H:%M')} your pace for {goal.target:,.0f} {unit} {span} is {place.expected:,.0f}; "
        f"you have {place.current:,.0f}, {place.gap:,.0f} behind. {gap_closer(goal.metric, place.gap)}"
    ).rstrip()
    return title, body


@dataclass(frozen=True)
class UserGoals:
    """One user's part of an evaluation: their time zone, preferences, goals and daily totals."""

    user_id: str
    zone: ZoneInfo
    preferences: NotificationPreferences
    goals: Sequence[Goal]
    totals: Mapping[MetricKind, Mapping[date, float]]


def nudges(
    user: UserGoals,
    day: date,
    slot: time,
    now: datetime,
    active_day: tuple[time, time] = DEFAULT_ACTIVE_DAY,
    cap: int = DAILY_NUDGE_CAP,
) -> list[Notification]:
    """The behind-goal notifications of one user at one slot of their local `day`."""
    if not user.preferences.enabled or user.preferences.is_quiet(slot):
        return []
    places = [
        standing(goal, day, slot, user.totals.get(goal.metric, {}), active_day)
        for goal in user.goals
        if goal.active and goal.notify
    ]
    behind = sorted((p for p in places if p.behind), key=lambda p: (-p.gap / p.goal.target, p.goal.goal_id))
    made = []
    for place in behind[:cap]:
        key = behind_goal_key(place.goal.goal_id, day, slot)
        title, body = behind_message(place, slot)
        made.append(
            Notification(
                notification_id=notification_id(user.user_id, key),
                user_id=user.user_id,
                kind=NotificationKind.BEHIND_GOAL,
                title=title,
                body=body,
                created_at=now,
                idempotency_key=key,
                goal_id=place.goal.goal_id,
                local_date=day,
            )
        )
    return made


def report_ready(user_id: str, week_start: date, steps: float, now: datetime) -> Notification:
    """The Monday notice that the report of the week starting `week_start` can be viewed."""
    key = report_ready_key(user_id, week_start)
    week_end = week_start + timedelta(days=6)
    summary = f" You took {steps:,.0f} steps." if steps else ""
    return Notification(
        notification_id=notification_id(user_id, key),
        user_id=user_id,
        kind=NotificationKind.REPORT_READY,
        title="Your weekly report is ready",
        body=f"See how your week of {week_start:%d %b} to {week_end:%d %b} went.{summary}",
        created_at=now,
        idempotency_key=key,
    )


def slot_instants(zone: ZoneInfo, slots: Iterable[time], since: datetime, until: datetime) -> list[tuple[date, time]]:
    """The (local day, slot) pairs of `zone` whose moment falls in (since, until], oldest first.

    A slot the clocks skip on a spring-forward day happens at the moment the
    skipped hour would have been (02:30 becomes 03:30); one the clocks repeat
    in the autumn happens the first time. Either way, once.
    """
    first = since.astimezone(zone).date() - timedelta(days=1)
    last = until.astimezone(zone).date()
    due = []
    day = first
    while day <= last:
        for slot in slots:
            moment = datetime.combine(day, slot, zone).astimezone(UTC)
            if since < moment <= until:
                due.append((moment, day, slot))
        day += timedelta(days=1)
    return [(day, slot) for _, day, slot in sorted(due)]


def slot_moment(zone: ZoneInfo, day: date, slot: time) -> datetime:
    return datetime.combine(day, slot, zone).astimezone(UTC)


SLOT = "slot"
REPORT = "report"


@dataclass(frozen=True)
class EvaluationWork:
    """One piece of an evaluator's work: a slot of one zone's local day, or a zone's Monday report notice.

    Its key names it for the claims through which several evaluators share the work.
    """

    kind: str  # SLOT or REPORT
    zone: str
    day: date
    at: time

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.zone}|{self.day.isoformat()}|{self.at:%H:%M}"

    @classmethod
    def from_key(cls, key: str) -> EvaluationWork | None:
        """The work a key names; None for a key this version does not know."""
        try:
            kind, zone, day, at = key.split("|")
            work = cls(kind, zone, date.fromisoformat(day), time.fromisoformat(at))
            zone_named(zone)
        except (ValueError, InvalidArgument):
            return None
        return work if work.kind in (SLOT, REPORT) else None

    def moment(self) -> datetime:
        return slot_moment(zone_named(self.zone), self.day, self.at)
