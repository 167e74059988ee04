"""How failed logins slow down guessing: per account (shared by every server) and per client address.

Per account, by canonical username whether or not the account exists, so the
limit never tells an attacker which names are real: at most `max_failures`
failed attempts in a window of `window`, then a pause. Each pause in a row
lasts twice the one before, at most `max_pause`, so a guesser slows to a crawl
while the owner is never locked out for good: once the pause ends they can log
in, and a successful login forgets the failures.

Per client address, also shared by every server: at most `max_failures`
failed logins in any sliding window of `window` (a minute), whatever the
names tried, so one address cannot spread its guesses over many accounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fittrack.core.domain.errors import ResourceExhausted


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 100
    window: timedelta = timedelta(hours=1)
    first_pause: timedelta = timedelta(minutes=15)
    max_pause: timedelta = timedelta(hours=4)
    # Pauses stop growing once an account has had no failure for this long.
    forget_after: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class LoginFailures:
    """The failed attempts on one username: the current window's count, and the pause, if any."""

    username: str
    window_start: datetime
    count: int = 0
    pauses: int = 0  # pauses in a row so far; the next one lasts first_pause * 2**pauses
    paused_until: datetime | None = None
    last_failure: datetime | None = None


def refuse_if_paused(failures: LoginFailures | None, now: datetime) -> None:
    """RESOURCE_EXHAUSTED while the username is paused; the same answer whether or not it exists."""
    if failures is not None and failures.paused_until is not None and now < failures.paused_until:
        minutes = max(1, math.ceil((failures.paused_until - now).total_seconds() / 60))
        raise ResourceExhausted(
            f"too many failed login attempts for this username; try again in {minutes} minute"
            f"{'' if minutes == 1 else 's'}"
        )


def after_failure(
    failures: LoginFailures | None, username: str, now: datetime, policy: ThrottlePolicy
) -> LoginFailures:
    """The record once one more attempt has failed."""
    if failures is None or (failures.last_failure is not None and now - failures.last_failure >= policy.forget_after):
        failures = LoginFailures(username, now)
    if now - failures.window_start >= policy.window:
        failures = replace(failures, window_start=now, count=0)
    failures = replace(failures, count=failures.count + 1, last_failure=now)
    if failures.count < policy.max_failures:
        return failures
    pause = min(policy.first_pause * 2**failures.pauses, policy.max_pause)
    # Never before the window ends, so that no hour sees more than max_failures attempts.
    until = max(now + pause, failures.window_start + policy.window)
    return replace(failures, window_start=until, count=0, pauses=failures.pauses + 1, paused_until=until)


# Servers' clocks agree to milliseconds under NTP: a failure stamped further ahead than this came from a
# clock that was wrong (or moved on purpose, in tests) and does not count until `now` reaches it.
CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class AddressPolicy:
    """Failed logins per client address: at most `max_failures` in any sliding window of `window`."""

    max_failures: int = 20
    window: timedelta = timedelta(minutes=1)

    def counted_span(self, now: datetime) -> tuple[datetime, datetime]:
        """(start, end]: the failures stamped in it count at `now`."""
        return now - self.window, now + CLOCK_SKEW

    def forget_before(self, now: datetime) -> datetime:
        """Failures stamped before this no longer count, now or later: they may be deleted."""
        return now - self.window


def refuse_if_address_limited(recent: Sequence[datetime], now: datetime, policy: AddressPolicy) -> None:
    """RESOURCE_EXHAUSTED while the address has had `max_failures` failed logins within the window.

    `recent`: the address's failure times in policy.counted_span(now), at least the newest
    `max_failures` of them, in any order. The wait lasts until the oldest of those leaves the window.
    """
    start, end = policy.counted_span(now)
    counted = sorted(moment for moment in recent if start < moment <= end)
    if len(counted) < policy.max_failures:
        return
    leaves = counted[-policy.max_failures] + policy.window
    seconds = max(1, math.ceil((leaves - now).total_seconds()))
    raise ResourceExhausted(
        f"too many failed logins from your address; try again in {seconds} second{'' if seconds == 1 else 's'}"
    )
