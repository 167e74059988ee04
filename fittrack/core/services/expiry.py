"""PASSWORD_EXPIRING notifications, 14 and 3 local days before a password expires.

Runs from the evaluator's tick beside GoalEvaluator.run_due: each user's zone
has a daily notice time, and when it falls due the notifier looks up, a page
of users at a time, the passwords that expire on the local day 14 (or 3) days
ahead. Keys are made from the user, the expiry and the days ahead, so a
re-run, an overlapping window or a second evaluator sends nothing twice, and
a password changed in between (a new expiry) is announced afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fittrack.core.domain.accounts import PASSWORD_WARNING_DAYS
from fittrack.core.domain.calendar import zone_named
from fittrack.core.domain.evaluation import notification_id, slot_instants, slot_moment
from fittrack.core.domain.notifications import Notification, NotificationKind
from fittrack.core.ports import AccountsUnitOfWork, NotificationQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpirySettings:
    notice_at: time = time(9, 0)  # local time of the daily look-up
    days_ahead: tuple[int, ...] = PASSWORD_WARNING_DAYS
    page_size: int = 2000


def password_expiring_key(user_id: str, expires_at: datetime, days_ahead: int) -> str:
    return f"password-expiring:{user_id}:{expires_at.astimezone(UTC).isoformat()}:{days_ahead}"


def password_expiring(user_id: str, expires_at: datetime, days_ahead: int, now: datetime) -> Notification:
    key = password_expiring_key(user_id, expires_at, days_ahead)
    return Notification(
        notification_id=notification_id(user_id, key),
        user_id=user_id,
        kind=NotificationKind.PASSWORD_EXPIRING,
        title=f"Your password expires in {days_ahead} days",
        body=(
            f"Your password expires on {expires_at.astimezone(UTC):%Y-%m-%d} (UTC). Set a new one before then "
            "(fittrack password change, or ChangePassword in the app) to keep logging in without interruption."
        ),
        created_at=now,
        idempotency_key=key,
    )


class PasswordExpiryNotifier:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        queue: NotificationQueue,
        clock: Callable[[], datetime],
        settings: ExpirySettings = ExpirySettings(),
    ) -> None:
        self._uow = uow
        self._queue = queue
        self._now = clock
        self._settings = settings

    def run_due(self, since: datetime, until: datetime) -> int:
        """Send the notices of every zone whose daily notice time falls in (since, until]; how many were sent."""
        with self._uow() as uow:
            zones = uow.users.time_zones()
        sent = 0
        for name in zones:
            for day, _ in slot_instants(zone_named(name), (self._settings.notice_at,), since, until):
                sent += self.notify_day(name, day)
        return sent

    def notify_day(self, zone_name: str, day: date) -> int:
        """The notices of local day `day` in one zone: passwords expiring 14 (or 3) local days later."""
        zone = zone_named(zone_name)
        as_of = max(self._now(), slot_moment(zone, day, self._settings.notice_at))
        sent = 0
        for days_ahead in self._settings.days_ahead:
            target = day + timedelta(days=days_ahead)
            start = datetime.combine(target, time(0), zone).astimezone(UTC)
            end = datetime.combine(target + timedelta(days=1), time(0), zone).astimezone(UTC)
            after = ""
            while True:
                with self._uow() as uow:
                    expiring = uow.users.expiring_in_zone(zone_name, start, end, after, self._settings.page_size)
                    if not expiring:
                        break
                    preferences = uow.preferences.get_many([user_id for user_id, _ in expiring])
                made = [
                    password_expiring(user_id, expires_at, days_ahead, as_of)
                    for user_id, expires_at in expiring
                    if preferences[user_id].enabled
                ]
                if made:
                    self._queue.send(made)
                sent += len(made)
                after = expiring[-1][0]
        if sent:
            log.info("password expiry notices for %s %s: %d", zone_name, day, sent)
        return sent
