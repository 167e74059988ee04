"""The HTTP identity provider adapter against a small issuer served on loopback: real HTTP, real signatures.

The issuer here is a stand-in whose key set the test changes at will, to
check key rotation and how often the keys are fetched again; the real
provider (oidc-provider) is used by tests/e2e/test_sso.py.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fittrack.core.adapters.oidc import HttpIdentityProvider
from fittrack.core.domain.errors import Unauthenticated, Unavailable
from fittrack.core.domain.oidc import ProviderSettings
from tests.oidc import SigningKey, hs256_with, unsigned_token


class StubIssuer:
    """Discovery and a JWKS the test can change; counts the JWKS requests."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.jwks_requests = 0
        self.down = False
        self.discovery_down = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                if stub.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    if stub.discovery_down:
                        self.send_error(503)
                        return
                    body = {"issuer": stub.issuer, "jwks_uri": stub.issuer + "/jwks", "token_endpoint": stub.issuer}
                elif self.path == "/jwks":
                    stub.jwks_requests += 1
                    body = {"keys": [key.public_jwk() for key in stub.keys]}
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer():
    stub = StubIssuer()
    stub.keys = [SigningKey.rsa("key-1")]
    yield stub
    stub.stop()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def provider(issuer, ticks) -> HttpIdentityProvider:
    settings = ProviderSettings("stub", issuer.issuer, "fittrack", allowed_algorithms=("RS256", "ES256"))
    return HttpIdentityProvider(settings, timeout=2, monotonic=ticks)


def token(issuer: StubIssuer, key: SigningKey, nonce: str = "n", **header) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": issuer.issuer, "sub": "s", "aud": "fittrack", "iat": now, "exp": now + 300, "nonce": nonce}
    return key.sign(claims, **header)


def now() -> datetime:
    return datetime.now(UTC)


def test_a_token_signed_with_a_key_added_since_the_last_fetch_is_accepted_after_one_refetch(issuer, provider, ticks):
    assert provider.verify(token(issuer, issuer.keys[0]), "n", now()).subject == "s"
    assert issuer.jwks_requests == 1
    ticks.now += 3600
    rotated = SigningKey.rsa("key-2")
    issuer.keys.append(rotated)
    assert provider.verify(token(issuer, rotated), "n", now()).subject == "s"
    assert issuer.jwks_requests == 2
    assert provider.verify(token(issuer, issuer.keys[0]), "n", now()).subject == "s"
    assert issuer.jwks_requests == 2


def test_the_discovery_document_is_read_again_after_an_hour_and_kept_while_the_provider_is_down(
    issuer, provider, ticks
):
    provider.verify(token(issuer, issuer.keys[0]), "n", now())
    assert provider.discovery_fetches == 1
    ticks.now += 3599
    rotated = SigningKey.rsa("key-2")
    issuer.keys.append(rotated)
    provider.verify(token(issuer, rotated), "n", now())
    assert provider.discovery_fetches == 1
    ticks.now += 3600
    issuer.keys.append(SigningKey.rsa("key-3"))
    provider.verify(token(issuer, issuer.keys[-1]), "n", now())
    assert provider.discovery_fetches == 2
    issuer.discovery_down = True
    ticks.now += 3600
    late = SigningKey.rsa("key-4")
    issuer.keys.append(late)
    # The document is due again but cannot be read: the stale one still leads to the keys.
    assert provider.verify(token(issuer, late), "n", now()).subject == "s"
    assert provider.discovery_fetches == 3


def test_unknown_key_ids_make_at_most_one_refetch_a_minute(issuer, provider, ticks):
    provider.verify(token(issuer, issuer.keys[0]), "n", now())
    ticks.now += 61
    stranger = SigningKey.rsa("made-up")
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="a key stub does not publish"):
            provider.verify(token(issuer, stranger), "n", now())
    assert issuer.jwks_requests == 2
    ticks.now += 59
    with pytest.raises(Unauthenticated):
        provider.verify(token(issuer, stranger), "n", now())
    assert issuer.jwks_requests == 2
    ticks.now += 2
    with pytest.raises(Unauthenticated):
        provider.verify(token(issuer, stranger), "n", now())
    assert issuer.jwks_requests == 3


def test_a_key_published_within_the_minute_after_a_refetch_waits_for_the_next_one(issuer, provider, ticks):
    provider.verify(token(issuer, issuer.keys[0]), "n", now())
    late = SigningKey.rsa("key-late")
    issuer.keys.append(late)
    with pytest.raises(Unauthenticated):
        provider.verify(token(issuer, late), "n", now())
    ticks.now += 60
    assert provider.verify(token(issuer, late), "n", now()).subject == "s"


def test_an_ec_key_verifies_es256_tokens(issuer, provider):
    issuer.keys.append(SigningKey.ec("ec-1"))
    assert provider.verify(token(issuer, issuer.keys[1]), "n", now()).subject == "s"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda issuer, key: token(issuer, key)[:-4] + "AAAA", id="bad signature"),
        pytest.param(
            lambda issuer, key: unsigned_token({"iss": issuer.issuer}, {"alg": "none", "kid": key.kid}) + ".",
            id="alg none",
        ),
        pytest.param(lambda issuer, key: hs256_with(key.public_pem(), {"iss": issuer.issuer}, key.kid), id="HS256"),
        pytest.param(lambda issuer, key: token(issuer, key, alg="RS512"), id="alg not allowed"),
        pytest.param(lambda issuer, key: "not.a.jwt", id="garbage"),
    ],
)
def test_a_forged_signature_or_algorithm_is_refused(issuer, provider, forge):
    with pytest.raises(Unauthenticated):
        provider.verify(forge(issuer, issuer.keys[0]), "n", now())


def test_an_rsa_key_is_not_used_for_an_ec_algorithm(issuer, provider):
    rsa_key = issuer.keys[0]
    impostor = SigningKey.ec(rsa_key.kid)  # an ES256 token naming the RSA key's id
    with pytest.raises(Unauthenticated, match="does not fit"):
        provider.verify(token(issuer, impostor), "n", now())


def test_an_unreachable_provider_is_unavailable(issuer, provider):
    issuer.down = True
    with pytest.raises(Unavailable):
        provider.verify(token(issuer, issuer.keys[0]), "n", now())
