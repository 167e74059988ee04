"""OpenID Providers over HTTP: discovery, the signing keys (JWKS), code redemption and ID token signatures.

The claims rules live in fittrack/core/domain/oidc.py; this module checks what needs
the network or cryptography. Nothing here logs or repeats a token, a code,
a verifier or the client secret.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime

import jwt

from fittrack.core.domain.errors import Unauthenticated, Unavailable
from fittrack.core.domain.oidc import ProviderSettings, VerifiedIdentity, check_claims
from fittrack.core.ports import IdentityProvider

log = logging.getLogger(__name__)

# An unknown key id makes us fetch the JWKS again (the provider rotated its keys), but at most this often:
# otherwise every forged token with a made-up kid would make this server hit the provider.
REFETCH_INTERVAL_SECONDS = 60.0
# A provider may move its endpoints or jwks_uri; the document is read again after this long.
DISCOVERY_TTL_SECONDS = 3600.0
MAX_RESPONSE_BYTES = 1 << 20
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class HttpIdentityProvider(IdentityProvider):
    """One provider; safe to share between the server's threads."""

    def __init__(
        self,
        settings: ProviderSettings,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        self._monotonic = monotonic
        self._refetch_interval = refetch_interval
        self._lock = threading.Lock()
        self._discovery: dict | None = None
        self._discovered_at = 0.0
        self.discovery_fetches = 0
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._declared: dict[jwt.PyJWK, str | None] = {}  # each key's "alg", when the JWKS names one
        self._keys_fetched_at: float | None = None
        self.jwks_fetches = 0  # for tests and operators: how often the key set was fetched

    def __repr__(self) -> str:
        return f"HttpIdentityProvider({self.settings.name!r}, issuer={self.settings.issuer!r})"

    def redeem(self, code: str, code_verifier: str, redirect_uri: str) -> str:
        endpoint = self._endpoint("token_endpoint")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        # RFC 6749 section 2.3.1: client_secret_basic form-encodes both parts before base64.
        pair = f"{urllib.parse.quote(self.settings.client_id, safe='')}:"
        pair += urllib.parse.quote(self.settings.client_secret, safe="")
        request = urllib.request.Request(
            endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        status, body = self._fetch(request, "token endpoint")
        if status >= 500:
            raise Unavailable(f"{self.settings.name} could not redeem the code (HTTP {status}); try again")
        if status != 200:
            error = body.get("error") if isinstance(body, dict) else None
            reason = f" ({error})" if isinstance(error, str) and error.isascii() and len(error) <= 64 else ""
            raise Unauthenticated(
                f"{self.settings.name} refused the authorization code{reason}: it may be used, expired, or "
                "obtained with another redirect_uri or code_verifier; start the login again"
            )
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise Unauthenticated(
                f"{self.settings.name} returned no ID token for the code; was the openid scope requested?"
            )
        return id_token

    def verify(self, id_token: str, nonce: str, now: datetime) -> VerifiedIdentity:
        name = self.settings.name
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise Unauthenticated("the ID token is malformed; it must be a signed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.allowed_algorithms:
            raise Unauthenticated(
                f"the ID token is signed with an algorithm not allowed for {name} "
                f"(allowed: {', '.join(self.settings.allowed_algorithms)})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the ID token's key id (kid) is malformed")
        key = self._key(kid)
        if key is None:
            raise Unauthenticated(f"the ID token is signed with a key {name} does not publish")
        # A key published for one algorithm is not used with another (RFC 7517 section 4.4).
        if key.key_type != _KEY_TYPES[algorithm[:2]] or self._declared.get(key) not in (None, algorithm):
            raise Unauthenticated(f"the ID token's algorithm does not fit {name}'s key")
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=[algorithm],
                # The claims are checked by fittrack.core.domain.oidc.check_claims against the injected clock.
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.PyJWTError:
            raise Unauthenticated(f"the ID token's signature does not verify with {name}'s key") from None
        return check_claims(claims, self.settings, nonce, now)

    # --- discovery and keys ---

    def _endpoint(self, name: str) -> str:
        discovery = self._discover()
        endpoint = discovery.get(name)
        if not isinstance(endpoint, str) or urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
            raise Unavailable(f"{self.settings.name}'s discovery document has no usable {name}")
        return endpoint

    def _discover(self) -> dict:
        with self._lock:
            cached = self._discovery
            if cached is not None and self._monotonic() - self._discovered_at < DISCOVERY_TTL_SECONDS:
                return cached
        try:
            document = self._fetch_discovery()
        except Unavailable:
            if cached is None:
                raise
            # A provider briefly down should not stop logins whose keys are still known.
            return cached
        with self._lock:
            self._discovery, self._discovered_at = document, self._monotonic()
        return document

    def _fetch_discovery(self) -> dict:
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        self.discovery_fetches += 1
        status, document = self._fetch(urllib.request.Request(url), "discovery document")
        if status != 200 or not isinstance(document, dict):
            raise Unavailable(f"{self.settings.name}'s discovery document is unavailable (HTTP {status}); try again")
        # OpenID Connect Discovery 1.0 section 4.3: the document must name the issuer it was fetched for.
        if document.get("issuer") != self.settings.issuer:
            raise Unavailable(f"{self.settings.name}'s discovery document names another issuer; check its settings")
        return document

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        with self._lock:
            fresh = self._keys_fetched_at is not None
            if fresh:
                found = self._lookup(kid)
                if found is not None:
                    return found
                if self._monotonic() - self._keys_fetched_at < self._refetch_interval:
                    return None
        keys, declared = self._fetch_keys()
        with self._lock:
            self._keys, self._declared = keys, declared
            self._keys_fetched_at = self._monotonic()
            return self._lookup(kid)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # Without a kid the key is unambiguous only when the provider publishes one.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _fetch_keys(self) -> tuple[dict[str | None, jwt.PyJWK], dict[jwt.PyJWK, str | None]]:
        status, document = self._fetch(urllib.request.Request(self._endpoint("jwks_uri")), "key set (JWKS)")
        self.jwks_fetches += 1
        if status != 200 or not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise Unavailable(f"{self.settings.name}'s signing keys are unavailable (HTTP {status}); try again")
        keys: dict[str | None, jwt.PyJWK] = {}
        declared: dict[jwt.PyJWK, str | None] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type or curve this server does not use
            keys[entry.get("kid")] = key
            declared[key] = entry.get("alg")
        return keys, declared

    def _fetch(self, request: urllib.request.Request, what: str) -> tuple[int, object]:
        """(HTTP status, parsed JSON or None); Unavailable when the provider cannot be reached."""
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                status, raw = response.status, response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read(MAX_RESPONSE_BYTES)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            log.warning("cannot reach %s's %s: %s", self.settings.name, what, reason)
            raise Unavailable(f"the identity provider {self.settings.name} cannot be reached; try again") from None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None
