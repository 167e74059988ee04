"""Registering, logging in, sessions, profile and password."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fittrack.core.domain.accounts import (
    COMMON_PASSWORD,
    MAX_DISPLAY_NAME,
    USERNAME,
    Credentials,
    Principal,
    Profile,
    ProfileChanges,
    User,
    check_new_password,
    days_until_expiry,
    expiry_warning,
    normalize_username,
    password_expiry,
)
from fittrack.core.domain.calendar import zone_named
from fittrack.core.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from fittrack.core.domain.events import (
    AccountDeleted,
    AccountThrottled,
    AddressThrottled,
    Confirming,
    LoginAttempted,
    LoginMethod,
    LoginOutcome,
    PasswordChanged,
    PasswordConfirmationFailed,
    RefreshTokenReused,
)
from fittrack.core.domain.oidc import CLOCK_LEEWAY, ExternalIdentity, ProviderSettings, VerifiedIdentity, username_base
from fittrack.core.domain.throttle import (
    AddressPolicy,
    LoginFailures,
    ThrottlePolicy,
    after_failure,
    refuse_if_address_limited,
    refuse_if_paused,
)
from fittrack.core.ports import (
    AccountsUnitOfWork,
    CommonPasswords,
    IdentityProvider,
    MetricStore,
    Observer,
    PasswordHasher,
    RefreshRecord,
    TokenSigner,
    Unobserved,
)

WRONG_CREDENTIALS = "unknown username or wrong password"
# How recent an SSO login must be to delete an account that has no password.
FRESH_LOGIN = timedelta(minutes=10)
MAX_NONCE_LENGTH = 255
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountSettings:
    password_max_age_days: int = 90
    refresh_token_ttl: timedelta = timedelta(days=30)
    login_throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    address_throttle: AddressPolicy = field(default_factory=AddressPolicy)


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    password_expires_at: datetime | None
    # Set when the password expires within PASSWORD_WARNING_DAYS[0] days, with the sentence to show.
    password_expires_in_days: int | None = None
    warnings: tuple[str, ...] = ()


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
        common_passwords: CommonPasswords | None = None,
        identity_providers: Mapping[str, IdentityProvider] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._uow = uow
        # Reads that must see the latest write (session checks, the profile): read-only, and in production
        # the primary's, or a replica's while the primary is out, so reads go on through a failover.
        self._lookup_uow = lookup_uow or uow
        self._metrics = metrics
        self._hasher = hasher
        self._signer = signer
        self._now = clock
        self._settings = settings
        self._common_passwords = common_passwords
        self._identity_providers = dict(identity_providers or {})
        # Told every login and its outcome, the throttles as they close, and the other security events.
        self._observer = observer or Unobserved()

    def register(self, raw_username: str, password: str, changes: ProfileChanges) -> Account:
        username = normalize_username(raw_username)
        self._check_new_password(password)
        now = self._now()
        profile = changes.apply_to(Profile(), now.date())
        user = User(user_id=uuid.uuid4().hex, username=username, profile=profile, created_at=now)
        # Hash before opening the transaction: bcrypt takes a quarter second.
        credentials = self._new_credentials(user.user_id, password, now)
        with self._uow() as uow:
            uow.users.add(user, credentials)
            uow.commit()
        return Account(user, credentials.expires_at)

    def login(self, raw_username: str, password: str, address: str | None = None) -> Session:
        """A new session; `address` is the client's (fittrack/server/ratelimit.py), whose failed logins are limited too.

        The address costs one more statement in the transactions a login opens anyway: one to check it,
        and one to record a failure. A name that cannot exist opened none: it gets one that does both.
        """
        now = self._now()
        user = None
        try:
            user, credentials, failures = self._find(raw_username, now, address)
            self._check_password(raw_username, password, credentials, failures, now, WRONG_CREDENTIALS, address)
            _refuse_if_expired(credentials, now)
            session = self._open_session(user.user_id, now)
        except ResourceExhausted:
            self._login_seen(LoginMethod.PASSWORD, LoginOutcome.THROTTLED, user, address)
            raise
        except (Unauthenticated, FailedPrecondition):
            self._login_seen(LoginMethod.PASSWORD, LoginOutcome.FAILURE, user, address)
            raise
        self._login_seen(LoginMethod.PASSWORD, LoginOutcome.SUCCESS, user, address)
        return session

    def _login_seen(
        self,
        method: LoginMethod,
        outcome: LoginOutcome,
        user: User | str | None,
        address: str | None,
        provider: str | None = None,
    ) -> None:
        user_id = user.user_id if isinstance(user, User) else user
        self._observer.saw(LoginAttempted(method, outcome, user_id, address, provider))

    def _check_password(
        self,
        raw_username: str,
        password: str,
        credentials: Credentials | None,
        failures: LoginFailures | None,
        now: datetime,
        complaint: str,
        address: str | None = None,
    ) -> None:
        """Unauthenticated(complaint) unless the password is right; a failure counts against the username
        and the address (a name that cannot exist: _find counted it against the address already).

        An unknown user costs a bcrypt verification too and counts the same,
        so neither the answer nor its timing tells which names exist.
        """
        if credentials is None:
            self._hasher.waste_time(password)
            right = False
        else:
            right = self._hasher.verify(password, credentials.password_hash)
        username = raw_username.strip().lower()
        if right:
            if failures is not None:
                with self._uow() as uow:
                    uow.login_failures.clear(username)
                    uow.commit()
            return
        if USERNAME.fullmatch(username):
            address_closed = False
            with self._uow() as uow:
                latest = uow.login_failures.get(username)
                counted = after_failure(latest, username, now, self._settings.login_throttle)
                uow.login_failures.put(counted)
                if address is not None:
                    address_closed = self._address_failed(uow, address, now)
                uow.commit()
            if counted.paused_until is not None and (latest is None or latest.paused_until != counted.paused_until):
                user_id = credentials.user_id if credentials is not None else None
                self._observer.saw(AccountThrottled(user_id, address))
            if address_closed:
                self._observer.saw(AddressThrottled(address))
        raise Unauthenticated(complaint)

    def _refuse_if_address_limited(self, uow: AccountsUnitOfWork, address: str | None, now: datetime) -> None:
        if address is None:
            return
        policy = self._settings.address_throttle
        start, end = policy.counted_span(now)
        refuse_if_address_limited(uow.address_failures.recent(address, start, end, policy.max_failures), now, policy)

    def _address_failed(self, uow: AccountsUnitOfWork, address: str, now: datetime) -> bool:
        """Counts a failure against the address; True when this one reached the limit (the caller reports it
        once the transaction commits). Failures are rare, so the extra read costs the logins nothing."""
        policy = self._settings.address_throttle
        uow.address_failures.add(address, now, policy.forget_before(now))
        start, end = policy.counted_span(now)
        # One more than the limit is read, so that only the failure that crosses it reports (a failure already in
        # flight when the address was refused would otherwise report the throttle again).
        recent = uow.address_failures.recent(address, start, end, policy.max_failures + 1)
        return len(recent) == policy.max_failures

    def _count_address_failure(self, address: str | None, now: datetime) -> None:
        """A failed login that no other write records: counted against the address in a transaction of its own."""
        if address is None:
            return
        with self._uow() as uow:
            closed = self._address_failed(uow, address, now)
            uow.commit()
        if closed:
            self._observer.saw(AddressThrottled(address))

    def sso_providers(self) -> list[ProviderSettings]:
        """The configured OpenID Providers, in configuration order."""
        return [provider.settings for provider in self._identity_providers.values()]

    def login_sso(
        self,
        provider_name: str,
        *,
        id_token: str = "",
        authorization_code: str = "",
        code_verifier: str = "",
        redirect_uri: str = "",
        nonce: str = "",
        address: str | None = None,
    ) -> Session:
        """Log in with an ID token, or an authorization code this server redeems; the first login makes the account.

        The account is the one linked to the token's (issuer, subject); the
        e-mail address plays no part, so nobody gets into an account by
        getting a provider to vouch for its owner's address. Forged or
        replayed tokens count against the client's `address` like wrong passwords.
        """
        try:
            if address is not None:
                with self._uow() as uow:
                    self._refuse_if_address_limited(uow, address, self._now())
        except ResourceExhausted:
            # Refused before the provider's name was checked: only a configured name goes into the audit line,
            # never the caller's text as given.
            known = provider_name if provider_name in self._identity_providers else None
            self._login_seen(LoginMethod.SSO, LoginOutcome.THROTTLED, None, address, known)
            raise
        try:
            session = self._login_sso(provider_name, id_token, authorization_code, code_verifier, redirect_uri, nonce)
        except Unauthenticated:
            self._login_seen(LoginMethod.SSO, LoginOutcome.FAILURE, None, address, provider_name)
            self._count_address_failure(address, self._now())
            raise
        self._login_seen(LoginMethod.SSO, LoginOutcome.SUCCESS, session.user_id, address, provider_name)
        return session

    def _login_sso(
        self,
        provider_name: str,
        id_token: str,
        authorization_code: str,
        code_verifier: str,
        redirect_uri: str,
        nonce: str,
    ) -> Session:
        provider = self._identity_provider(provider_name)
        if not nonce or len(nonce) > MAX_NONCE_LENGTH:
            raise InvalidArgument(
                f"nonce is required (at most {MAX_NONCE_LENGTH} characters): the one the authorization request sent"
            )
        if id_token and authorization_code:
            raise InvalidArgument("send either id_token or authorization_code, not both")
        if authorization_code:
            if not redirect_uri:
                raise InvalidArgument("redirect_uri is required with authorization_code: the authorization request's")
            if not provider.settings.redirect_allowed(redirect_uri):
                raise InvalidArgument(
                    f"redirect_uri is not one {provider.settings.name} logins may use here; allowed: "
                    + ", ".join(provider.settings.redirect_uris or ["none (configure redirect_uris)"])
                )
            if not PKCE_VERIFIER.fullmatch(code_verifier):
                raise InvalidArgument(
                    "code_verifier is required with authorization_code: the PKCE verifier (RFC 7636), "
                    "43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_', '~'"
                )
            id_token = provider.redeem(authorization_code, code_verifier, redirect_uri)
        elif not id_token:
            raise InvalidArgument("send id_token, or authorization_code with code_verifier and redirect_uri")
        now = self._now()
        identity = provider.verify(id_token, nonce, now)
        user_id = self._link(identity, now)
        return self._open_session(user_id, now)

    def _identity_provider(self, name: str) -> IdentityProvider:
        configured = ", ".join(self._identity_providers) or "none are configured on this server"
        if not name:
            raise InvalidArgument(f"provider is required: the name of an SSO provider ({configured})")
        provider = self._identity_providers.get(name)
        if provider is None:
            raise NotFound(f"no SSO provider is named {name!r}; configured: {configured}")
        return provider

    def _link(self, identity: VerifiedIdentity, now: datetime) -> str:
        """The id of the account linked to the identity, made now on its first login; the nonce is spent."""
        for _ in range(5):
            with self._uow() as uow:
                # Kept until the token expires, plus the leeway during which it would still be accepted.
                remember_until = identity.expires_at + CLOCK_LEEWAY
                if not uow.identities.use_nonce(identity.issuer, identity.nonce, remember_until, now):
                    raise Unauthenticated("this ID token's nonce was used already; start the login again")
                linked = uow.identities.get(identity.issuer, identity.subject)
                if linked is not None:
                    uow.commit()
                    return linked.user_id
                user = _sso_user(identity, self._free_username(uow, username_base(identity)), now)
                try:
                    uow.users.add(user, None)
                    uow.identities.add(ExternalIdentity(identity.issuer, identity.subject, user.user_id, now))
                except AlreadyExists:
                    continue  # a concurrent first login took the name or linked this identity: look again
                uow.commit()
                log.info("made account %s at its first SSO login", user.user_id)
                return user.user_id
        raise Unavailable("could not make the account for this login; try again")

    @staticmethod
    def _free_username(uow: AccountsUnitOfWork, base: str) -> str:
        candidate = base
        while uow.users.get_by_username(candidate) is not None:
            candidate = f"{base}-{secrets.token_hex(2)}"
        return candidate

    def refresh(self, refresh_token: str, address: str | None = None) -> Session:
        """A new pair of tokens for a refresh token used once; `address` (the client's) is for the audit log."""
        owner: list[str] = []  # the token's user, once its record is found: a failure is theirs
        try:
            session = self._refresh(refresh_token, address, owner)
        except (Unauthenticated, FailedPrecondition):
            self._login_seen(LoginMethod.REFRESH, LoginOutcome.FAILURE, owner[0] if owner else None, address)
            raise
        self._login_seen(LoginMethod.REFRESH, LoginOutcome.SUCCESS, session.user_id, address)
        return session

    def _refresh(self, refresh_token: str, address: str | None, owner: list[str]) -> Session:
        if not refresh_token:
            raise Unauthenticated("refresh_token is missing")
        now = self._now()
        token_hash = _digest(refresh_token)
        with self._uow() as uow:
            record = uow.sessions.get_refresh(token_hash)
            if record is None or not uow.sessions.is_active(record.session_id):
                raise Unauthenticated("the refresh token is unknown or its session ended; log in again")
            owner.append(record.user_id)
            if record.used:
                # A used token coming back means it leaked: end the whole session.
                uow.sessions.revoke(record.session_id, now)
                uow.commit()
                self._observer.saw(RefreshTokenReused(record.user_id, address))
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
        with self._lookup_uow() as uow:
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
        expires = credentials.expires_at if credentials else None  # None too for an SSO account without password
        return Account(User(user.user_id, user.username, profile, user.created_at), expires)

    def change_password(
        self, principal: Principal | None, raw_username: str, current: str, new: str, address: str | None = None
    ) -> datetime | None:
        """Set a new password; returns when it expires.

        Without a principal the username and current password authenticate
        the call: that is the way out for a user whose password expired.
        A wrong current password counts against the client's `address` either way.
        """
        self._check_new_password(new)
        if new == current:
            raise InvalidArgument("the new password must differ from the current one")
        if principal is not None:
            with self._uow() as uow:
                self._refuse_if_address_limited(uow, address, self._now())
                user = uow.users.get(principal.user_id)
                credentials = uow.users.get_credentials(user.user_id) if user else None
            if user is None or credentials is None:
                self._hasher.waste_time(current)
                self._count_address_failure(address, self._now())
                raise Unauthenticated(WRONG_CREDENTIALS)
            if not self._hasher.verify(current, credentials.password_hash):
                self._observer.saw(PasswordConfirmationFailed(user.user_id, Confirming.PASSWORD_CHANGE, address))
                self._count_address_failure(address, self._now())
                raise Unauthenticated("the current password is wrong")
        elif raw_username:
            # Without a token this is a login by another name: the same answers, limits and audit lines.
            user = None
            try:
                user, credentials, failures = self._find(raw_username, self._now(), address)
                self._check_password(
                    raw_username, current, credentials, failures, self._now(), WRONG_CREDENTIALS, address
                )
            except ResourceExhausted:
                self._login_seen(LoginMethod.PASSWORD, LoginOutcome.THROTTLED, user, address)
                raise
            except Unauthenticated:
                self._login_seen(LoginMethod.PASSWORD, LoginOutcome.FAILURE, user, address)
                raise
        else:
            raise Unauthenticated("send a bearer token, or the username with the current password")
        fresh = self._new_credentials(user.user_id, new, self._now())
        with self._uow() as uow:
            uow.users.set_credentials(fresh)
            # Other sessions may belong to whoever knew the old password; the
            # caller's own session goes on.
            uow.sessions.revoke_all(user.user_id, self._now(), keep=principal.session_id if principal else None)
            uow.commit()
        self._observer.saw(PasswordChanged(user.user_id, address))
        return fresh.expires_at

    def delete_account(self, principal: Principal, password: str, address: str | None = None) -> None:
        with self._uow() as uow:
            user = uow.users.get(principal.user_id)
            credentials = uow.users.get_credentials(principal.user_id)
            started = uow.sessions.started_at(principal.session_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        if credentials is None:
            # An account that signs in only with SSO has no password to confirm with: a fresh
            # login proves the owner is at the keyboard, as the password does for the others.
            if started is None or self._now() - started > FRESH_LOGIN:
                raise FailedPrecondition(
                    f"this account signs in with SSO: log in with SSO again and delete it within "
                    f"{FRESH_LOGIN.seconds // 60} minutes"
                )
        elif not self._hasher.verify(password, credentials.password_hash):
            self._observer.saw(PasswordConfirmationFailed(principal.user_id, Confirming.ACCOUNT_DELETION, address))
            raise Unauthenticated("the password is wrong; the account was not deleted")
        # Metrics first: if their store is down the account still exists, so
        # the user can retry; the other way round would strand the data.
        self._metrics.delete_user(principal.user_id)
        with self._uow() as uow:
            uow.users.delete(principal.user_id)
            uow.commit()
        self._observer.saw(AccountDeleted(principal.user_id, address))

    def _find(
        self, raw_username: str, now: datetime, address: str | None = None
    ) -> tuple[User | None, Credentials | None, LoginFailures | None]:
        """The user, credentials and failed attempts a login names; all None for a name that cannot exist.

        ResourceExhausted while the address has failed too often, or the name is paused after too many
        failures, before any password is tried. A name that cannot exist fails whatever the password:
        that failure is counted against the address here, in the same transaction as the check.
        """
        username = raw_username.strip().lower()
        possible = USERNAME.fullmatch(username) is not None
        if not possible and address is None:
            return None, None, None
        with self._uow() as uow:
            self._refuse_if_address_limited(uow, address, now)
            if not possible:
                closed = self._address_failed(uow, address, now)
                uow.commit()
                if closed:
                    self._observer.saw(AddressThrottled(address))
                return None, None, None
            failures = uow.login_failures.get(username)
            refuse_if_paused(failures, now)
            user = uow.users.get_by_username(username)
            return user, uow.users.get_credentials(user.user_id) if user else None, failures

    def _check_new_password(self, password: str) -> None:
        check_new_password(password)
        if self._common_passwords is not None and password in self._common_passwords:
            raise InvalidArgument(COMMON_PASSWORD)

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
            try:
                uow.sessions.create(session_id, user_id, now)
            except NotFound as deleted:  # deleted since its password or token was checked: no session to open
                raise Unauthenticated(str(deleted)) from None
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
        password_expires = credentials.expires_at if credentials else None
        warning = expiry_warning(password_expires, now)
        return Session(
            user_id=user_id,
            access_token=access_token,
            access_expires_at=access_expires,
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires,
            password_expires_at=password_expires,
            password_expires_in_days=days_until_expiry(password_expires, now) if warning else None,
            warnings=(warning,) if warning else (),
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


def _sso_user(identity: VerifiedIdentity, username: str, now: datetime) -> User:
    """A new account for a first SSO login: the provider's name for the user and time zone, when usable."""
    name = "".join(ch for ch in identity.name.strip() if ch.isprintable())[:MAX_DISPLAY_NAME]
    try:
        zone_named(identity.zoneinfo)
        zone = identity.zoneinfo
    except InvalidArgument:
        zone = "UTC"
    return User(uuid.uuid4().hex, username, Profile(display_name=name, time_zone=zone), now)
