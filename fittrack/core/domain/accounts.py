"""Users, their profile and the rules for usernames, passwords and biometrics."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from fittrack.core.domain.calendar import zone_named
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.wording import number

USERNAME = re.compile(r"[a-z0-9._-]{3,32}")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
MAX_DISPLAY_NAME = 64
HEIGHT_CM = (50.0, 272.0)
WEIGHT_KG = (2.0, 650.0)
MAX_AGE_YEARS = 130


class Sex(enum.IntEnum):
    UNSPECIFIED = 0
    FEMALE = 1
    MALE = 2
    OTHER = 3


@dataclass(frozen=True)
class Profile:
    display_name: str = ""
    height_cm: float | None = None
    weight_kg: float | None = None
    birth_date: date | None = None
    stated_age: int | None = None
    sex: Sex = Sex.UNSPECIFIED
    time_zone: str = "UTC"

    def age_on(self, today: date) -> int | None:
        if self.birth_date is not None:
            had_birthday = (today.month, today.day) >= (self.birth_date.month, self.birth_date.day)
            return today.year - self.birth_date.year - (0 if had_birthday else 1)
        return self.stated_age


@dataclass(frozen=True)
class ProfileChanges:
    """What a user asked to change; None means keep."""

    display_name: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    birth_date: date | None = None
    stated_age: int | None = None
    sex: Sex | None = None
    time_zone: str | None = None

    def apply_to(self, profile: Profile, today: date) -> Profile:
        """The profile with these changes, or INVALID_ARGUMENT for the first impossible value."""
        updates: dict = {}
        if self.display_name is not None:
            name = self.display_name.strip()
            if len(name) > MAX_DISPLAY_NAME or not name.isprintable():
                raise InvalidArgument(f"display_name must be at most {MAX_DISPLAY_NAME} printable characters")
            updates["display_name"] = name
        if self.height_cm is not None:
            updates["height_cm"] = _in_range("height_cm", self.height_cm, HEIGHT_CM, "cm")
        if self.weight_kg is not None:
            updates["weight_kg"] = _in_range("weight_kg", self.weight_kg, WEIGHT_KG, "kg")
        if self.birth_date is not None:
            if self.birth_date > today:
                raise InvalidArgument(f"birth_date {self.birth_date} is in the future")
            if today.year - self.birth_date.year > MAX_AGE_YEARS:
                raise InvalidArgument(f"birth_date {self.birth_date} is more than {MAX_AGE_YEARS} years ago")
            updates["birth_date"] = self.birth_date
            updates["stated_age"] = None
        elif self.stated_age is not None:
            if not 1 <= self.stated_age <= MAX_AGE_YEARS:
                raise InvalidArgument(f"age_years must be 1 to {MAX_AGE_YEARS}, got {self.stated_age}")
            updates["stated_age"] = self.stated_age
            updates["birth_date"] = None
        if self.sex is not None:
            try:
                updates["sex"] = Sex(self.sex)
            except ValueError:
                raise InvalidArgument(f"unknown sex {self.sex}; use FEMALE, MALE or OTHER") from None
        if self.time_zone is not None:
            zone_named(self.time_zone)
            updates["time_zone"] = self.time_zone
        return replace(profile, **updates)


def _in_range(name: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    low, high = bounds
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be {number(low)} to {number(high)} {unit}, got {number(value)}")
    return float(value)


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    profile: Profile
    created_at: datetime


@dataclass(frozen=True)
class Credentials:
    user_id: str
    password_hash: bytes
    created_at: datetime
    expires_at: datetime | None = field(default=None)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class Principal:
    """Who an authenticated request acts for."""

    user_id: str
    session_id: str


ID = re.compile(r"[0-9a-f]{32}")


def is_id(value: str) -> bool:
    """Whether `value` has the shape of the ids this server hands out (uuid4 hex)."""
    return ID.fullmatch(value) is not None


def normalize_username(raw: str) -> str:
    """The canonical, lower-case form; INVALID_ARGUMENT when it cannot be a username."""
    username = raw.strip().lower()
    if not USERNAME.fullmatch(username):
        raise InvalidArgument("username must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-'")
    return username


def check_new_password(password: str) -> None:
    """Length only: no composition rules (NIST SP 800-63B); the service also refuses common passwords."""
    limits = f"passwords are {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"password must be at least {MIN_PASSWORD_LENGTH} characters long ({limits})")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(f"password must be at most {MAX_PASSWORD_LENGTH} characters long ({limits})")


COMMON_PASSWORD = (
    "this password is one of the 10,000 most common passwords, which attackers try first; choose another "
    "(a few unrelated words make a strong one)"
)
# A password about to expire is announced this many days ahead (LoginResponse warnings, notifications).
PASSWORD_WARNING_DAYS = (14, 3)


def days_until_expiry(expires_at: datetime | None, now: datetime) -> int | None:
    """Whole days left, rounded up (0 once expired); None when the password never expires."""
    if expires_at is None:
        return None
    return max(0, math.ceil((expires_at - now) / timedelta(days=1)))


def expiry_warning(expires_at: datetime | None, now: datetime) -> str | None:
    """What to tell a user whose password expires within the first warning period; None otherwise."""
    days = days_until_expiry(expires_at, now)
    if days is None or days > PASSWORD_WARNING_DAYS[0]:
        return None
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    moment = f"{expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"your password expires {when} ({moment}); set a new one with ChangePassword"


def password_expiry(set_at: datetime, max_age_days: int) -> datetime | None:
    """When a password set at `set_at` expires; None when passwords never expire (max age 0)."""
    return set_at + timedelta(days=max_age_days) if max_age_days > 0 else None
