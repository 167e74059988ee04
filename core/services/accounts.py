"""Registering, logging in, sessions, profile and password."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.domain.accounts import (
    USERNAME,
    Credentials,
    Principal,
    Profile,
    ProfileChanges,
    User,
    check_new_password,
    normalize_username,
    password_expiry,
)
from core.domain.errors import FailedPrecondition, InvalidArgument, Unauthenticated, Unimplemented
from core.ports import AccountsUnitOfWork, MetricStore, PasswordHasher, RefreshRecord, TokenSigner

WRONG_CREDENTIALS = "unknown username or wrong password"


@dataclass(frozen=True)
class AccountSettings:
    password_max_age_days: int = 90
    refresh_token_ttl: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    password_expires_at: datetime | None


@dataclass(frozen=True)
class Account:
    user: User
    password_expires_at: datetime | None


class Accounts:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        metrics: MetricStore,
        hasher: PasswordHasher,
        signer: TokenSigner,
        clock: Callable[[], datetime],
        settings: AccountSettings,
        lookup_uow: Callable[[], AccountsUnitOfWork] | None = None,
    ) -> None:
        self._uow = uow
        # Session checks run on every call: they read only, and may use a cheaper read-only unit of work.
        self._lookup_uow = lookup_uow or uow
        self._metrics = metrics
        self._hasher = hasher
        self._signer = signer
        self._now = clock
        self._settings = settings

    def register(self, raw_username: str, password: str, changes: ProfileChanges) -> Account:
        username = normalize_username(raw_username)
        check_new_password(password)
        now = self._now()
        profile = changes.apply_to(Profile(), now.date())
        user = User(user_id=uuid.uuid4().hex, username=username, profile=profile, created_at=now)
        # Hash before opening the transaction: bcrypt takes a quarter second.
        credentials = self._new_credentials(user.user_id, password, now)
        with self._uow() as uow:
            uow.users.add(user, credentials)
            uow.commit()
        return Account(user, credentials.expires_at)

    def login(self, raw_username: str, password: str) -> Session:
        user, credentials = self._find(raw_username)
        if user is None or credentials is None:
            self._hasher.waste_time(password)
            raise Unauthenticated(WRONG_CREDENTIALS)
        if not self._hasher.verify(password, credentials.password_hash):
            raise Unauthenticated(WRONG_CREDENTIALS)
        now = self._now()
        _refuse_if_expired(credentials, now)
        return self._open_session(user.user_id, now)

    def login_sso(self) -> Session:
        raise Unimplemented("single sign-on is not available yet; log in with username and password")

    def refresh(self, refresh_token: str) -> Session:
        if not refresh_token:
            raise Unauthenticated("refresh_token is missing")
        now = self._now()
        token_hash = _digest(refresh_token)
        with self._uow() as uow:
            record = uow.sessions.get_refresh(token_hash)
            if record is None or not uow.sessions.is_active(record.session_id):
                raise Unauthenticated("the refresh token is unknown or its session ended; log in again")
            if record.used:
                # A used token coming back means it leaked: end the whole session.
                uow.sessions.revoke(record.session_id, now)
                uow.commit()
                raise Unauthenticated("the refresh token was already used; log in again")
            if now >= record.expires_at:
                raise Unauthenticated("the refresh token has expired; log in again")
            credentials = uow.users.get_credentials(record.user_id)
            # Refreshing must not keep a session alive past the password's expiry.
            if credentials is not None:
                _refuse_if_expired(credentials, now)
            uow.sessions.mark_refresh_used(token_hash)
            session = self._rotate(uow, record.user_id, record.session_id, credentials, now)
            uow.commit()
        return session

    def authenticate(self, access_token: str) -> Principal:
        claims = self._signer.verify(access_token, self._now())
        with self._lookup_uow() as uow:
            if not uow.sessions.is_active(claims.session_id):
                raise Unauthenticated("the session of this token has ended; log in again")
        return Principal(claims.user_id, claims.session_id)

    def check_session(self, principal: Principal) -> None:
        """Unauthenticated once the session has ended (logout, password change, account deleted)."""
        with self._lookup_uow() as uow:
            if not uow.sessions.is_active(principal.session_id):
                raise Unauthenticated("your session has ended; log in again")

    def logout(self, principal: Principal) -> None:
        with self._uow() as uow:
            uow.sessions.revoke(principal.session_id, self._now())
            uow.commit()

    def profile(self, principal: Principal) -> Account:
        with self._uow() as uow:
            user = uow.users.get(principal.user_id)
            credentials = uow.users.get_credentials(principal.user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        return Account(user, credentials.expires_at if credentials else None)

    def update_profile(self, principal: Principal, changes: ProfileChanges) -> Account:
        with self._uow() as uow:
            user = uow.users.get(principal.user_id)
            if user is None:
                raise Unauthenticated("this account no longer exists")
            profile = changes.apply_to(user.profile, self._now().date())
            uow.users.update_profile(user.user_id, profile)
            credentials = uow.users.get_credentials(user.user_id)
            uow.commit()
        return Account(User(user.user_id, user.username, profile, user.created_at), credentials.expires_at)

    def change_password(
        self, principal: Principal | None, raw_username: str, current: str, new: str
    ) -> datetime | None:
        """Set a new password; returns when it expires.

        Without a principal the username and current password authenticate
        the call: that is the way out for a user whose password expired.
        """
        check_new_password(new)
        if new == current:
            raise InvalidArgument("the new password must differ from the current one")
        if principal is not None:
            with self._uow() as uow:
                user = uow.users.get(principal.user_id)
                credentials = uow.users.get_credentials(user.user_id) if user else None
        elif raw_username:
            user, credentials = self._find(raw_username)
        else:
            raise Unauthenticated("send a bearer token, or the username with the current password")
        if user is None or credentials is None:
            self._hasher.waste_time(current)
            raise Unauthenticated(WRONG_CREDENTIALS)
        if not self._hasher.verify(current, credentials.password_hash):
            raise Unauthenticated("the current password is wrong")
        fresh = self._new_credentials(user.user_id, new, self._now())
        with self._uow() as uow:
            uow.users.set_credentials(fresh)
            # Other sessions may belong to whoever knew the old password; the
            # caller's own session goes on.
            uow.sessions.revoke_all(user.user_id, self._now(), keep=principal.session_id if principal else None)
            uow.commit()
        return fresh.expires_at

    def delete_account(self, principal: Principal, password: str) -> None:
        with self._uow() as uow:
            credentials = uow.users.get_credentials(principal.user_id)
        if credentials is None:
            raise Unauthenticated("this account no longer exists")
        if not self._hasher.verify(password, credentials.password_hash):
            raise Unauthenticated("the password is wrong; the account was not deleted")
        # Metrics first: if their store is down the account still exists, so
        # the user can retry; the other way round would strand the data.
        self._metrics.delete_user(principal.user_id)
        with self._uow() as uow:
            uow.users.delete(principal.user_id)
            uow.commit()

    def _find(self, raw_username: str) -> tuple[User | None, Credentials | None]:
        """The user and credentials a login names; (None, None) for a name that cannot exist."""
        username = raw_username.strip().lower()
        if not USERNAME.fullmatch(username):
            return None, None
        with self._uow() as uow:
            user = uow.users.get_by_username(username)
            return user, uow.users.get_credentials(user.user_id) if user else None

    def _new_credentials(self, user_id: str, password: str, now: datetime) -> Credentials:
        return Credentials(
            user_id=user_id,
            password_hash=self._hasher.hash(password),
            created_at=now,
            expires_at=password_expiry(now, self._settings.password_max_age_days),
        )

    def _open_session(self, user_id: str, now: datetime) -> Session:
        session_id = uuid.uuid4().hex
        with self._uow() as uow:
            uow.sessions.create(session_id, user_id, now)
            credentials = uow.users.get_credentials(user_id)
            session = self._rotate(uow, user_id, session_id, credentials, now)
            uow.commit()
        return session

    def _rotate(
        self,
        uow: AccountsUnitOfWork,
        user_id: str,
        session_id: str,
        credentials: Credentials | None,
        now: datetime,
    ) -> Session:
        refresh_token = secrets.token_urlsafe(32)
        refresh_expires = now + self._settings.refresh_token_ttl
        uow.sessions.add_refresh(RefreshRecord(_digest(refresh_token), session_id, user_id, refresh_expires, False))
        access_token, access_expires = self._signer.issue(user_id, session_id, now)
        return Session(
            user_id=user_id,
            access_token=access_token,
            access_expires_at=access_expires,
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires,
            password_expires_at=credentials.expires_at if credentials else None,
        )


def _refuse_if_expired(credentials: Credentials, now: datetime) -> None:
    if credentials.expired(now):
        raise FailedPrecondition(
            f"your password expired on {credentials.expires_at:%Y-%m-%d}; set a new one with "
            "ChangePassword (username, current and new password), then log in again"
        )


def _digest(token: str) -> str:
    """Refresh tokens are stored hashed, so a copy of the database cannot be replayed."""
    return hashlib.sha256(token.encode()).hexdigest()
