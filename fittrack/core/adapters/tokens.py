"""Signed access tokens (JWT, HMAC-SHA256), with key ids so that keys rotate without a restart.

Every token names its key in the `kid` header. A keyring holds the keys that
verify, one of them current (it signs). FITTRACK_TOKEN_SECRET alone is a
keyring of one key, `default`. FITTRACK_TOKEN_KEYS_FILE is a JSON file

    {"current": "2026-12", "keys": {"2026-11": "<secret>", "2026-12": "<secret>"}}

re-read when it changes (looked at every FITTRACK_TOKEN_KEYS_RECHECK_SECONDS
at most). To rotate: add the new key, make it current once every server has
the file, and remove the old one after an access token's lifetime.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from fittrack.core.domain.errors import Unauthenticated
from fittrack.core.ports import AccessClaims, TokenSigner

log = logging.getLogger(__name__)

ISSUER = "fittrack"
AUDIENCE = "fittrack-api"
TOKEN_TYPE = "access"
# The only algorithm signed or accepted: the allowlist is what stops "alg: none",
# a downgrade to another HMAC, and RSA/HMAC key confusion.
ALGORITHM = "HS256"
DEFAULT_KID = "default"
MIN_SECRET_BYTES = 32
KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current key id {self.current!r} is not among the keys")
        for kid, secret in self.keys.items():
            if not KID.fullmatch(kid):
                raise ValueError(f"key id {kid!r} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"key {kid!r} must be at least {MIN_SECRET_BYTES} bytes")

    def __repr__(self) -> str:
        # Never the secrets: a keyring may end up in a log line or a traceback.
        return f"Keyring(current={self.current!r}, kids={sorted(self.keys)!r})"


def single_key(secret: bytes) -> Keyring:
    return Keyring(DEFAULT_KID, {DEFAULT_KID: secret})


def parse_keyring(text: str) -> Keyring:
    """A keyring from the keys file's JSON; ValueError saying what is wrong (never quoting a secret)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"it is not valid JSON (line {error.lineno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), dict) or not document["keys"]:
        raise ValueError('it must be an object {"current": "<kid>", "keys": {"<kid>": "<secret>", ...}}')
    keys = document["keys"]
    if not all(isinstance(secret, str) for secret in keys.values()):
        raise ValueError("every key must be a string")
    current = document.get("current")
    if not isinstance(current, str):
        raise ValueError('"current" must name the key id that signs new tokens')
    return Keyring(current, {kid: secret.encode() for kid, secret in keys.items()})


def load_keyring(path: Path) -> Keyring:
    try:
        return parse_keyring(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read it ({error.strerror})") from None


class KeysFile:
    """The keyring of a file, re-read when its modification time, size or inode change.

    A file that turns unreadable or malformed keeps the last good keyring (and
    is logged), so a half-written edit never stops every login.
    """

    def __init__(
        self, path: Path, recheck_seconds: float = 5.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = Path(path)
        self._recheck = recheck_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._keyring = load_keyring(self._path)
        self._checked_at = monotonic()

    def keyring(self) -> Keyring:
        if self._monotonic() - self._checked_at >= self._recheck:
            with self._lock:
                if self._monotonic() - self._checked_at >= self._recheck:
                    self._reload_if_changed()
                    self._checked_at = self._monotonic()
        return self._keyring

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _reload_if_changed(self) -> None:
        signature = self._stat()
        if signature == self._signature:
            return
        try:
            keyring = load_keyring(self._path)
        except ValueError as error:
            log.warning("token keys file %s not reloaded, keeping the previous keys: %s", self._path, error)
            return
        self._signature = signature
        if keyring != self._keyring:
            log.info("token keys reloaded from %s: current %s, %d keys", self._path, keyring.current, len(keyring.keys))
        self._keyring = keyring


class JwtSigner(TokenSigner):
    def __init__(self, keys: bytes | Keyring | KeysFile, ttl: timedelta) -> None:
        if isinstance(keys, bytes):
            if len(keys) < MIN_SECRET_BYTES:
                raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
            keys = single_key(keys)
        self._keyring: Callable[[], Keyring] = keys.keyring if isinstance(keys, KeysFile) else lambda: keys
        self._ttl = ttl

    def issue(self, user_id: str, session_id: str, now: datetime) -> tuple[str, datetime]:
        keyring = self._keyring()
        expires = now + self._ttl
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "typ": TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            # Unique per token (RFC 9068): two issued in the same second for one session still differ.
            "jti": secrets.token_urlsafe(12),
        }
        token = jwt.encode(claims, keyring.keys[keyring.current], algorithm=ALGORITHM, headers={"kid": keyring.current})
        return token, expires

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("the access token is malformed; log in again") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"the access token must be signed with {ALGORITHM}; log in again")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the access token names no signing key (kid); log in again")
        secret = self._keyring().keys.get(kid)
        if secret is None:
            raise Unauthenticated("the access token was signed with a key not accepted (any more); log in again")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked against the injected clock below, not
                # PyJWT's wall clock (which would also reject a token from a
                # server whose clock runs a second ahead).
                options={"require": ["exp", "iat", "sub", "sid", "typ"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise Unauthenticated("the access token is malformed or its signature is wrong; log in again") from None
        if claims["typ"] != TOKEN_TYPE:
            raise Unauthenticated("this is not an access token")
        expires = datetime.fromtimestamp(claims["exp"], UTC)
        if now >= expires:
            raise Unauthenticated("the access token has expired; refresh it or log in again")
        return AccessClaims(user_id=claims["sub"], session_id=claims["sid"], expires_at=expires)
