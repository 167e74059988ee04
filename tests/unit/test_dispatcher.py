"""The dispatcher's handler without a broker: what it stores, what it fans out, how it pushes and retries."""

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.core.domain.delivery import (
    DeadLetter,
    DeliveryState,
    PushOutcome,
    PushResult,
    RetryPolicy,
    backoff_delay,
    push_due_at,
)
from fittrack.core.domain.goals import GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.notifications import (
    DAILY_NUDGE_CAP,
    Notification,
    NotificationKind,
    NotificationPreferences,
    behind_goal_key,
    report_ready_key,
)
from fittrack.core.services.dispatch import DeadLetters, Dispatcher, DispatchSettings
from tests.unit.fakes import FakeApp, FakeDeadLetterLog, FakePushChannel, FakeSink, fake_app

# Wednesday 10 June 2026, 14:00 in Paris.
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
TODAY = date(2026, 6, 10)
RETRY = PushResult(PushOutcome.RETRY, "webhook answered HTTP 503 Service Unavailable")
POLICY = RetryPolicy(max_attempts=3, base_seconds=2.0, max_seconds=60.0)


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOW)


@pytest.fixture
def channel() -> FakePushChannel:
    return FakePushChannel()


@pytest.fixture
def letters() -> FakeDeadLetterLog:
    return FakeDeadLetterLog()


@pytest.fixture
def live() -> FakeSink:
    return FakeSink()


@pytest.fixture
def dispatcher(app, live, channel, letters) -> Dispatcher:
    settings = DispatchSettings(retry=POLICY, push_timeout_seconds=5.0)
    return Dispatcher(app.database, live, app.clock, channel, letters, settings, random.Random(7))


def report_ready(user_id: str, week_start: date = date(2026, 6, 1), notification_id: str | None = None):
    return Notification(
        notification_id or uuid.uuid4().hex,
        user_id,
        NotificationKind.REPORT_READY,
        "Your weekly report is ready",
        "You walked 50,000 steps last week.",
        NOW,
        report_ready_key(user_id, week_start),
    )


def nudge(user_id: str, goal_id: str, slot: time, day: date | None = TODAY):
    return Notification(
        uuid.uuid4().hex,
        user_id,
        NotificationKind.BEHIND_GOAL,
        "A walk would help",
        "You are behind your steps goal.",
        NOW,
        behind_goal_key(goal_id, day or TODAY, slot),
        goal_id,
        local_date=day,
    )


def stored(app: FakeApp, user_id: str) -> list[Notification]:
    return app.database.notifications_of(user_id)


def delivery_of(app: FakeApp, notification: Notification):
    return app.database.state.deliveries[notification.notification_id]


def set_preferences(app: FakeApp, preferences: NotificationPreferences) -> None:
    with app.database() as uow:
        uow.preferences.put(preferences)
        uow.commit()


# --- storing: once, and only what the user wants -------------------------------


def test_a_notification_handed_over_twice_is_stored_and_shown_live_once(app, alice, dispatcher, live):
    notification = report_ready(alice.user_id)
    assert dispatcher.handle([notification]) == [notification]
    assert dispatcher.handle([notification]) == []
    assert stored(app, alice.user_id) == [notification]
    assert live.delivered == [notification]


def test_a_second_notification_with_the_same_key_is_dropped(app, alice, dispatcher, channel):
    first, again = report_ready(alice.user_id), report_ready(alice.user_id)
    dispatcher.handle([first, again])
    assert stored(app, alice.user_id) == [first]
    assert channel.pushed == [first]


def test_at_most_three_nudges_a_day_are_kept_across_evaluator_runs(app, alice, dispatcher):
    goal = app.goals.create(alice, MetricKind.STEPS, GoalPeriod.DAILY, 10_000)
    dispatcher.handle([nudge(alice.user_id, goal.goal_id, time(11)), nudge(alice.user_id, goal.goal_id, time(13))])
    dispatcher.handle([nudge(alice.user_id, goal.goal_id, time(16)), nudge(alice.user_id, goal.goal_id, time(18))])
    dispatcher.handle([nudge(alice.user_id, goal.goal_id, time(20))])
    assert len(stored(app, alice.user_id)) == DAILY_NUDGE_CAP == 3
    tomorrow = nudge(alice.user_id, goal.goal_id, time(11), TODAY + timedelta(days=1))
    assert dispatcher.handle([tomorrow]) == [tomorrow]


def test_the_nudge_cap_is_per_user(app, alice, bob, dispatcher):
    goals = {p.user_id: app.goals.create(p, MetricKind.STEPS, GoalPeriod.DAILY, 10_000) for p in (alice, bob)}
    slots = [time(hour) for hour in (9, 11, 13, 15)]
    dispatcher.handle([nudge(user, goal.goal_id, slot) for user, goal in goals.items() for slot in slots])
    assert len(stored(app, alice.user_id)) == len(stored(app, bob.user_id)) == 3


def test_a_duplicate_nudge_does_not_use_up_the_cap(app, alice, dispatcher):
    goal = app.goals.create(alice, MetricKind.STEPS, GoalPeriod.DAILY, 10_000)
    first = nudge(alice.user_id, goal.goal_id, time(11))
    dispatcher.handle([first, first, nudge(alice.user_id, goal.goal_id, time(13))])
    dispatcher.handle([nudge(alice.user_id, goal.goal_id, time(16))])
    assert len(stored(app, alice.user_id)) == 3


def test_a_nudge_without_a_local_day_counts_towards_the_users_own_day(app, dispatcher):
    # 12:00 UTC on 10 June is already 11 June in Kiritimati (UTC+14).
    kiritimati = app.sign_up("kiri", time_zone="Pacific/Kiritimati")
    goal = app.goals.create(kiritimati, MetricKind.STEPS, GoalPeriod.DAILY, 10_000)
    dispatcher.handle([nudge(kiritimati.user_id, goal.goal_id, time(11), day=None)])
    assert [n.local_date for n in stored(app, kiritimati.user_id)] == [date(2026, 6, 11)]


def test_nothing_is_stored_for_a_user_who_turned_notifications_off(app, alice, dispatcher, live, channel):
    set_preferences(app, NotificationPreferences(alice.user_id, enabled=False))
    assert dispatcher.handle([report_ready(alice.user_id)]) == []
    assert stored(app, alice.user_id) == [] and live.delivered == [] and channel.pushed == []


def test_a_goal_with_notifications_off_or_deleted_notifies_nobody(app, alice, dispatcher):
    quiet = app.goals.create(alice, MetricKind.STEPS, GoalPeriod.DAILY, 10_000)
    app.goals.update(alice, quiet.goal_id, None, None, notify=False)
    gone = app.goals.create(alice, MetricKind.DISTANCE, GoalPeriod.DAILY, 5_000)
    app.goals.delete(alice, gone.goal_id)
    kept = app.goals.create(alice, MetricKind.ACTIVE_MINUTES, GoalPeriod.DAILY, 30)
    wanted = nudge(alice.user_id, kept.goal_id, time(11))
    dispatcher.handle(
        [nudge(alice.user_id, quiet.goal_id, time(11)), nudge(alice.user_id, gone.goal_id, time(11)), wanted]
    )
    assert stored(app, alice.user_id) == [wanted]


def test_a_notification_for_a_deleted_account_is_dropped(app, dispatcher):
    assert dispatcher.handle([report_ready("no-such-user")]) == []


def test_the_chunk_is_looked_up_in_one_unit_of_work(app, alice, bob, dispatcher):
    units = len(app.database.units)
    dispatcher.handle([report_ready(alice.user_id), report_ready(bob.user_id)])
    # One to store, one to claim the pushes, one to settle them: not one per notification.
    assert len(app.database.units) - units == 3


# --- pushing ---------------------------------------------------------------------


def test_a_new_notification_is_pushed_once_and_marked_delivered(app, alice, dispatcher, channel):
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    assert channel.pushed == [notification]
    assert delivery_of(app, notification).state is DeliveryState.DELIVERED
    assert dispatcher.push_due() == 0
    assert channel.pushed == [notification]


def test_without_a_push_channel_nothing_waits_to_be_pushed(app, alice, live):
    dispatcher = Dispatcher(app.database, live, app.clock)
    dispatcher.handle([report_ready(alice.user_id)])
    assert app.database.state.deliveries == {}
    assert dispatcher.push_due() == 0 and dispatcher.seconds_until_due() is None


def test_quiet_hours_hold_the_push_back_until_they_end_but_not_the_app(app, alice, dispatcher, channel, live):
    # 14:00 in Paris is inside quiet hours of 13:00 to 15:30.
    set_preferences(app, NotificationPreferences(alice.user_id, True, time(13), time(15, 30)))
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    assert live.delivered == [notification] and stored(app, alice.user_id) == [notification]
    assert channel.pushed == []
    assert delivery_of(app, notification).due_at == datetime(2026, 6, 10, 13, 30, tzinfo=UTC)
    assert dispatcher.seconds_until_due() == 90 * 60
    app.clock.advance(timedelta(minutes=89))
    assert dispatcher.push_due() == 0
    app.clock.advance(timedelta(minutes=1))
    assert dispatcher.push_due() == 1
    assert channel.pushed == [notification]


def test_quiet_hours_past_midnight_end_the_next_morning_in_the_users_zone():
    preferences = NotificationPreferences("u", True, time(22), time(7))
    late_in_new_york = datetime(2026, 6, 11, 3, 0, tzinfo=UTC)  # 23:00 on 10 June in New York
    due = push_due_at(preferences, ZoneInfo("America/New_York"), late_in_new_york)
    assert due == datetime(2026, 6, 11, 11, 0, tzinfo=UTC)  # 07:00 in New York
    assert push_due_at(preferences, ZoneInfo("America/New_York"), due) == due


def test_a_failed_push_is_retried_after_a_jittered_backoff(app, alice, dispatcher, channel):
    channel.script = [RETRY]
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    waiting = delivery_of(app, notification)
    assert (waiting.state, waiting.attempts, waiting.last_error) == (DeliveryState.PENDING, 1, RETRY.detail)
    assert NOW <= waiting.due_at <= NOW + timedelta(seconds=POLICY.base_seconds)
    app.clock.set(waiting.due_at)
    assert dispatcher.push_due() == 1
    assert channel.pushed == [notification, notification]
    assert delivery_of(app, notification).state is DeliveryState.DELIVERED


def test_a_retry_that_would_fall_in_quiet_hours_waits_for_their_end(app, alice, live, channel, letters):
    # Quiet from 14:01 in Paris; the retry waits at least a minute.
    set_preferences(app, NotificationPreferences(alice.user_id, True, time(14, 1), time(15)))
    slow = DispatchSettings(retry=RetryPolicy(3, base_seconds=3600, max_seconds=3600))
    dispatcher = Dispatcher(app.database, live, app.clock, channel, letters, slow, FixedRandom(120))
    channel.script = [RETRY]
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    assert delivery_of(app, notification).due_at == datetime(2026, 6, 10, 13, 0, tzinfo=UTC)


def test_after_the_last_attempt_the_push_is_a_dead_letter(app, alice, dispatcher, channel, letters):
    channel.fail_always(RETRY)
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    for _ in range(POLICY.max_attempts - 1):
        app.clock.set(delivery_of(app, notification).due_at)
        assert dispatcher.push_due() == 1
    dead = delivery_of(app, notification)
    assert (dead.state, dead.attempts, dead.last_error) == (DeliveryState.DEAD, 3, RETRY.detail)
    assert letters.letters == [DeadLetter(notification, 3, RETRY.detail, app.clock())]
    app.clock.advance(timedelta(days=1))
    assert dispatcher.push_due() == 0
    assert len(channel.pushed) == POLICY.max_attempts


def test_a_push_refused_for_good_is_a_dead_letter_at_once(app, alice, dispatcher, channel, letters):
    channel.script = [PushResult(PushOutcome.PERMANENT, "webhook answered HTTP 404 Not Found")]
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    dead = delivery_of(app, notification)
    assert (dead.state, dead.attempts) == (DeliveryState.DEAD, 1)
    assert "404" in dead.last_error and "404" in letters.letters[0].last_error


def test_a_replayed_dead_letter_is_pushed_again_and_listed_as_replayed(app, alice, dispatcher, channel, letters):
    channel.script = [PushResult(PushOutcome.PERMANENT, "webhook answered HTTP 410 Gone")]
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    operators = DeadLetters(app.database, app.clock, letters)
    (listed,) = operators.list()
    assert (listed.notification, listed.state) == (notification, DeliveryState.DEAD)

    app.clock.advance(timedelta(minutes=5))
    assert operators.replay([notification.notification_id, "not-a-dead-letter"]) == [notification.notification_id]
    again = delivery_of(app, notification)
    assert (again.state, again.attempts, again.due_at) == (DeliveryState.PENDING, 0, app.clock())
    assert dispatcher.push_due() == 1
    assert channel.pushed == [notification, notification]
    (listed,) = operators.list()
    assert listed.state is DeliveryState.DELIVERED
    assert operators.replay(None) == []


def test_without_a_log_the_dead_deliveries_are_the_dead_letters(app, alice, bob, dispatcher, channel):
    channel.fail_always(PushResult(PushOutcome.PERMANENT, "webhook answered HTTP 400 Bad Request"))
    dispatcher.handle([report_ready(alice.user_id), report_ready(bob.user_id)])
    operators = DeadLetters(app.database, app.clock)
    assert {letter.notification.user_id for letter in operators.list()} == {alice.user_id, bob.user_id}
    assert len(operators.replay(None)) == 2
    assert operators.list() == []


def test_a_dead_letter_past_the_logs_retention_is_still_listed_from_the_database(app, alice, dispatcher, channel):
    channel.script = [PushResult(PushOutcome.PERMANENT, "webhook answered HTTP 403 Forbidden")]
    notification = report_ready(alice.user_id)
    dispatcher.handle([notification])
    (listed,) = DeadLetters(app.database, app.clock, FakeDeadLetterLog()).list()
    assert (listed.notification, listed.attempts, listed.state) == (notification, 1, DeliveryState.DEAD)


# --- a dispatcher that dies mid-push ---------------------------------------------


class Killed(BaseException):
    """The process dying: nothing after it runs, as with SIGKILL."""


class DyingChannel(FakePushChannel):
    def push(self, notification: Notification) -> PushResult:
        super().push(notification)
        raise Killed


def test_after_a_crash_mid_push_the_notification_is_stored_once_and_pushed_again_with_the_same_id(
    app, alice, live, channel, letters
):
    notification = report_ready(alice.user_id)
    settings = DispatchSettings(retry=POLICY, push_timeout_seconds=5.0)
    dying = DyingChannel()
    # It stores the notification, claims its push and dies mid-push: its queue offset is never committed.
    with pytest.raises(Killed):
        Dispatcher(app.database, FakeSink(), app.clock, dying, letters, settings).handle([notification])

    successor = Dispatcher(app.database, live, app.clock, channel, letters, settings)
    assert successor.handle([notification]) == []
    assert stored(app, alice.user_id) == [notification]
    # Its live copy goes again (each server relays an id once); its push waits for the lease to end.
    assert live.delivered == [notification] and channel.pushed == []
    app.clock.advance(timedelta(seconds=settings.lease_seconds))
    assert successor.push_due() == 1
    assert [n.notification_id for n in dying.pushed + channel.pushed] == [notification.notification_id] * 2
    assert delivery_of(app, notification).state is DeliveryState.DELIVERED
    assert successor.handle([notification]) == [] and live.delivered == [notification]


def test_a_push_that_killed_its_dispatcher_on_every_attempt_becomes_a_dead_letter(app, alice, letters):
    settings = DispatchSettings(retry=POLICY, push_timeout_seconds=5.0)
    dying = Dispatcher(app.database, FakeSink(), app.clock, DyingChannel(), letters, settings)
    notification = report_ready(alice.user_id)
    with pytest.raises(Killed):
        dying.handle([notification])
    for _ in range(POLICY.max_attempts - 1):
        app.clock.advance(timedelta(seconds=settings.lease_seconds))
        with pytest.raises(Killed):
            dying.push_due()
    app.clock.advance(timedelta(seconds=settings.lease_seconds))
    channel = FakePushChannel()
    assert Dispatcher(app.database, FakeSink(), app.clock, channel, letters, settings).push_due() == 1
    dead = delivery_of(app, notification)
    assert (dead.state, dead.attempts, channel.pushed) == (DeliveryState.DEAD, 4, [])
    assert "stopped during attempt 3" in dead.last_error
    assert letters.letters[0].attempts == 4  # the last claim, past the limit, counts: as stored


# --- the backoff schedule --------------------------------------------------------


def test_the_backoff_grows_exponentially_up_to_its_cap_with_full_jitter():
    rng = random.Random(42)
    for attempts in range(1, 16):
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
        delays = [backoff_delay(attempts, 2.0, 60.0, rng) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        # Full jitter: spread over the whole window, not bunched at its end.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_the_backoff_is_repeatable_with_a_seed_and_survives_huge_attempt_counts():
    first = [backoff_delay(n, 2.0, 3600.0, random.Random(1)) for n in range(1, 8)]
    assert first == [backoff_delay(n, 2.0, 3600.0, random.Random(1)) for n in range(1, 8)]
    assert 0 <= backoff_delay(10_000, 2.0, 3600.0, random.Random(1)) <= 3600.0


class FixedRandom(random.Random):
    """A 'random' source that always lands `seconds` into the window, for exact expectations."""

    def __init__(self, seconds: float) -> None:
        super().__init__(0)
        self._seconds = seconds

    def uniform(self, a: float, b: float) -> float:
        return min(b, a + self._seconds)
