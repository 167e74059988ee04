"""Single sign-on with OpenID Connect: the providers' settings and the rules an ID token's claims must meet.

The signature is checked by an adapter (fittrack/core/adapters/oidc.py); everything
here needs no library: which algorithms may be configured, the claims checks
of OpenID Connect Core 1.0 section 3.1.3.7, and how a new account's username
is derived. Accounts are linked by (issuer, subject) only: an e-mail address
is not an identity (a provider may let anyone claim any address, and
addresses get reassigned).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fittrack.core.domain.errors import Unauthenticated

# Asymmetric algorithms only: with HS* the provider's client secret would be the key, and "none" is no signature.
SIGNING_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
DEFAULT_ALGORITHMS = ("RS256",)
CLOCK_LEEWAY = timedelta(seconds=60)
PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# RFC 8252 section 8.3: loopback IP literals, not "localhost", which a hosts file may point elsewhere.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})


@dataclass(frozen=True)
class ProviderSettings:
    """One configured OpenID Provider (FITTRACK_OIDC_PROVIDERS)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    # Other audiences an ID token may name beside our client id; any other one is refused.
    trusted_audiences: tuple[str, ...] = ()
    allowed_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    # Where the authorization request may have sent the user back; a code obtained with another is not redeemed.
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid", "profile", "email")

    def redirect_allowed(self, redirect_uri: str) -> bool:
        """Exact match, or, for an http loopback URI, a match on all but the port (RFC 8252 section 7.3):
        a native app such as the CLI listens on whatever port is free."""
        if redirect_uri in self.redirect_uris:
            return True
        wanted = _without_loopback_port(redirect_uri)
        return wanted is not None and any(_without_loopback_port(uri) == wanted for uri in self.redirect_uris)


def _without_loopback_port(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname is None or parts.hostname.lower() not in LOOPBACK_HOSTS:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts._replace(netloc=host).geturl()


@dataclass(frozen=True)
class VerifiedIdentity:
    """What a valid ID token says about the user."""

    issuer: str
    subject: str
    nonce: str
    expires_at: datetime
    preferred_username: str = ""
    email: str = ""
    name: str = ""
    zoneinfo: str = ""


@dataclass(frozen=True)
class ExternalIdentity:
    """An account's login at a provider: (issuer, subject) is unique and names one account."""

    issuer: str
    subject: str
    user_id: str
    created_at: datetime


def check_claims(
    claims: dict, provider: ProviderSettings, nonce: str, now: datetime, leeway: timedelta = CLOCK_LEEWAY
) -> VerifiedIdentity:
    """The identity the claims of a signature-checked ID token prove, or Unauthenticated saying what is wrong.

    The messages name the rule broken, never the token's contents.
    """
    if claims.get("iss") != provider.issuer:
        raise Unauthenticated(f"the ID token was not issued by {provider.name}'s issuer")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise Unauthenticated("the ID token has no valid subject (sub)")
    audiences = claims.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list) or not all(isinstance(each, str) for each in audiences):
        raise Unauthenticated("the ID token has no valid audience (aud)")
    if provider.client_id not in audiences:
        raise Unauthenticated("the ID token was issued to another client (aud)")
    untrusted = [each for each in audiences if each != provider.client_id and each not in provider.trusted_audiences]
    if untrusted:
        raise Unauthenticated("the ID token also names an audience this server does not trust (aud)")
    if "azp" in claims:
        if claims["azp"] != provider.client_id:
            raise Unauthenticated("the ID token was issued to another authorized party (azp)")
    elif len(audiences) > 1:
        raise Unauthenticated("the ID token names several audiences but no authorized party (azp)")
    expires = _moment(claims, "exp", required=True)
    issued = _moment(claims, "iat", required=True)
    not_before = _moment(claims, "nbf", required=False)
    if now >= expires + leeway:
        raise Unauthenticated("the ID token has expired (exp); log in again")
    if issued > now + leeway:
        raise Unauthenticated("the ID token was issued in the future (iat); check the clocks")
    if not_before is not None and not_before > now + leeway:
        raise Unauthenticated("the ID token is not valid yet (nbf); check the clocks")
    if not nonce:
        raise Unauthenticated("no nonce was sent with the request")
    if claims.get("nonce") != nonce:
        raise Unauthenticated("the ID token's nonce does not match the request's")
    return VerifiedIdentity(
        issuer=provider.issuer,
        subject=subject,
        nonce=nonce,
        expires_at=expires,
        preferred_username=_text(claims, "preferred_username"),
        email=_text(claims, "email"),
        name=_text(claims, "name"),
        zoneinfo=_text(claims, "zoneinfo"),
    )


def _moment(claims: dict, name: str, required: bool) -> datetime | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    # bool is an int in Python; a NumericDate is not.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated(f"the ID token's {name} is missing or not a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise Unauthenticated(f"the ID token's {name} is out of range") from None


def _text(claims: dict, name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ""


def username_base(identity: VerifiedIdentity) -> str:
    """A username (fittrack.core.domain.accounts.USERNAME) made from the preferred username or the e-mail's local part.

    Only a suggestion: the caller makes it unique. Letters lose their accents;
    anything else outside a-z, 0-9, '.', '_', '-' becomes '-'.
    """
    raw = identity.preferred_username or identity.email.partition("@")[0] or "user"
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode().lower()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", ascii_only).strip("-.")[:26].strip("-.")
    return cleaned if len(cleaned) >= 3 else f"{cleaned or 'user'}-sso"[:26]
