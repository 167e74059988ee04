"""What the contract checks build: users, goals, notifications and readings, at a fixed moment."""

from datetime import UTC, date, datetime, timedelta

from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.delivery import Delivery
from fittrack.core.domain.goals import Goal, GoalPeriod
from fittrack.core.domain.metrics import MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


DAY = date(2026, 6, 10)


def user(user_id: str = "u1", username: str = "alice", zone: str = "Europe/Paris") -> tuple[User, Credentials]:
    return User(user_id, username, Profile(time_zone=zone), T0), Credentials(user_id, b"hash", T0, None)


def add_user(uow, user_id: str = "u1", username: str = "alice", zone: str = "Europe/Paris") -> None:
    with uow() as unit:
        unit.users.add(*user(user_id, username, zone))
        unit.commit()


def goal(goal_id: str = "g1", user_id: str = "u1", period: GoalPeriod = GoalPeriod.DAILY, active=True) -> Goal:
    return Goal(goal_id, user_id, MetricKind.STEPS, period, 1000.0, active, T0, T0)


def notification(notification_id: str, user_id: str = "u1", key: str | None = None) -> Notification:
    return Notification(
        notification_id, user_id, NotificationKind.GOAL_MET, "t", "b", T0, key or f"key-{notification_id}"
    )


def add_goals(uow, *goals: Goal) -> None:
    with uow() as unit:
        for each in goals:
            unit.goals.add(each)
        unit.commit()


# --- metric store and bus -----------------------------------------------------------


def placed(minute: int, value: float, day: date = DAY) -> PlacedReading:
    return PlacedReading(MetricKind.STEPS, minute, value, day)


# --- notification delivery ----------------------------------------------------------


LEASE = T0 + timedelta(seconds=11)


def stored_with_deliveries(uow, *notifications: Notification, due: datetime = T0) -> None:
    with uow() as unit:
        for each in notifications:
            assert unit.notifications.add(each)
            unit.deliveries.add(Delivery(each.notification_id, each.user_id, due, T0))
        unit.commit()


def claimed(uow, now: datetime = T0, limit: int = 10, ids=None) -> list[tuple[Delivery, Notification]]:
    with uow() as unit:
        taken = unit.deliveries.claim(now, now + timedelta(seconds=11), limit, ids)
        unit.commit()
    return taken


def delivery_states(uow, *notifications: Notification) -> dict[str, Delivery]:
    with uow() as unit:
        return unit.deliveries.get_many([n.notification_id for n in notifications])


# --- evaluation claims -----------------------------------------------------------


SLOT_KEY = "slot|Europe/Paris|2026-06-10|11:00"


WORK_LEASE = timedelta(minutes=5)


def claim_work(uow, holder: str, now: datetime, key: str = SLOT_KEY) -> bool:
    with uow() as unit:
        taken = unit.evaluation_claims.claim(key, holder, now, now + WORK_LEASE)
        unit.commit()
    return taken


# --- single sign-on identities ------------------------------------------------------


ISSUER = "https://id.example.test"
