"""What happened, as the services report it: the audit log and the metrics both read these.

The services say what happened once (`observer.saw(event)`), and the adapters decide what each event means to
them: a counter to add to, an audit line to write. An event carries ids and addresses, never a secret: no
password, token or token hash belongs in one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar


class LoginMethod(enum.StrEnum):
    PASSWORD = "password"
    SSO = "sso"
    REFRESH = "refresh"


class LoginOutcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # wrong password, unknown user, bad or expired token
    THROTTLED = "throttled"  # refused before the password was looked at: too many failures


@dataclass(frozen=True)
class Event:
    # Security events go to the audit log as well as to the metrics.
    audited: ClassVar[bool] = False


@dataclass(frozen=True)
class LoginAttempted(Event):
    method: LoginMethod
    outcome: LoginOutcome
    user_id: str | None = None  # None when no account matched
    address: str | None = None  # the client's address, when known
    provider: str | None = None  # SSO: the configured provider's name
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class AddressThrottled(Event):
    """An address just reached its limit of failed logins and is refused for a while."""

    address: str
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class AccountThrottled(Event):
    """An account just reached its limit of failed logins and is locked for a while.

    The limit counts by username whether or not an account has it (so it never tells which names exist):
    user_id is None for a name no account has."""

    user_id: str | None
    address: str | None = None
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class RefreshTokenReused(Event):
    """A refresh token was presented a second time: the session it belongs to is revoked."""

    user_id: str
    address: str | None = None
    audited: ClassVar[bool] = True


class Confirming(enum.StrEnum):
    """What a signed-in caller confirmed with their password."""

    PASSWORD_CHANGE = "password_change"
    ACCOUNT_DELETION = "account_deletion"


@dataclass(frozen=True)
class PasswordConfirmationFailed(Event):
    """A signed-in caller gave a wrong password to change it or delete the account: someone holding a stolen
    access token guesses this way, so it is audited like a failed login."""

    user_id: str
    confirming: Confirming
    address: str | None = None
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class PasswordChanged(Event):
    user_id: str
    address: str | None = None
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class AccountDeleted(Event):
    user_id: str
    address: str | None = None
    audited: ClassVar[bool] = True


@dataclass(frozen=True)
class NotificationsStored(Event):
    count: int


@dataclass(frozen=True)
class NotificationPushed(Event):
    pass


@dataclass(frozen=True)
class PushRetried(Event):
    """A push failed in a way worth trying again; it is scheduled for later."""


@dataclass(frozen=True)
class NotificationDeadLettered(Event):
    pass


@dataclass(frozen=True)
class EvaluationSlotRun(Event):
    users: int
    seconds: float
