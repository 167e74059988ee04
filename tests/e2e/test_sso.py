"""Single sign-on end to end: the real server on both profiles, a real OpenID Provider (oidc-provider on Node.js).

The provider signs with keys this module made, so the negative tests forge
tokens with real signatures over tampered claims. Every refusal of a token is
UNAUTHENTICATED and says which check failed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from fittrack.core.adapters.audit import AUDIT_LOGGER
from fittrack.generated.v1 import account_pb2
from tests.oidc import (
    CLIENT_SECRET,
    REDIRECT_URI,
    LocalProvider,
    SigningKey,
    authorization_url,
    authorize,
    hs256_with,
    pkce_pair,
    redeem,
    unsigned_token,
)
from tests.support import RunningServer, Stubs, eventually, rpc_error

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def keys() -> list[SigningKey]:
    return [SigningKey.rsa("test-rsa-1"), SigningKey.ec("test-ec-1")]


@pytest.fixture(scope="module")
def oidc(tmp_path_factory, keys):
    provider = LocalProvider.start(tmp_path_factory.mktemp("oidc"), keys)
    yield provider
    provider.stop()


@pytest.fixture
def sso_server(server_config, clock, oidc):
    providers = [
        oidc.settings(trusted_audiences=["fittrack-mobile"]),
        # Nothing listens on port 9 of loopback (discard), so this one is always down.
        oidc.settings(name="down", issuer="http://127.0.0.1:9"),
    ]
    # The negative tests fail many logins from one address; the per-address limit has tests of its own.
    config = replace(server_config, oidc_providers=json.dumps(providers), max_login_failures_per_address=1000)
    running = RunningServer(config, clock)
    yield running
    running.stop()


@pytest.fixture
def sso_stubs(sso_server):
    connected = Stubs.connect(sso_server.address)
    yield connected
    connected.channel.close()


def code_login(stubs: Stubs, oidc: LocalProvider, login: str, nonce: str | None = None):
    """The authorization-code flow as a client app does it, the code then given to LoginSSO."""
    nonce = nonce or f"nonce-{time.monotonic_ns()}"
    verifier, challenge = pkce_pair()
    authorization = authorize(authorization_url(oidc, nonce, challenge), login)
    redirect_uri = authorization.redirect_uri.split("?")[0]
    request = account_pb2.LoginSSORequest(
        provider="local",
        authorization_code=authorization.code,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        nonce=nonce,
    )
    return stubs.accounts.LoginSSO(request), request


def nonce_claim(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["nonce"]


def profile(stubs: Stubs, login: account_pb2.LoginResponse) -> account_pb2.Profile:
    auth = [("authorization", f"Bearer {login.access_token}")]
    return stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=auth)


def test_an_authorization_code_login_opens_a_session_and_the_next_login_finds_the_same_account(
    sso_stubs, oidc, new_username
):
    name = new_username("sso")
    first, _ = code_login(sso_stubs, oidc, name)
    shown = profile(sso_stubs, first)
    assert shown.user_id == first.user_id
    assert shown.username.startswith(name)
    assert not shown.HasField("password_expires_at")
    second, _ = code_login(sso_stubs, oidc, name)
    assert second.user_id == first.user_id
    assert profile(sso_stubs, second).username == shown.username


def test_an_sso_account_is_deleted_after_a_fresh_login_and_not_from_an_old_session(
    sso_stubs, oidc, clock, new_username
):
    name = new_username("leaver")
    login, _ = code_login(sso_stubs, oidc, name)
    clock.advance(timedelta(minutes=11))
    # Refreshing keeps the session going, but not the moment of its login.
    refreshed = sso_stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    stale = [("authorization", f"Bearer {refreshed.access_token}")]
    error = rpc_error(lambda: sso_stubs.accounts.DeleteAccount(account_pb2.DeleteAccountRequest(), metadata=stale))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "log in with SSO again" in error.details()
    assert profile(sso_stubs, refreshed).user_id == login.user_id
    fresh, _ = code_login(sso_stubs, oidc, name)
    assert fresh.user_id == login.user_id
    sso_stubs.accounts.DeleteAccount(
        account_pb2.DeleteAccountRequest(), metadata=[("authorization", f"Bearer {fresh.access_token}")]
    )
    assert rpc_error(lambda: profile(sso_stubs, fresh)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_id_token_the_client_got_from_the_token_endpoint_logs_in(sso_stubs, oidc, new_username):
    verifier, challenge = pkce_pair()
    authorization = authorize(authorization_url(oidc, "nonce-id-token", challenge), new_username("sso"))
    tokens = redeem(oidc, authorization.code, verifier, authorization.redirect_uri.split("?")[0])
    login = sso_stubs.accounts.LoginSSO(
        account_pb2.LoginSSORequest(provider="local", id_token=tokens["id_token"], nonce="nonce-id-token")
    )
    assert profile(sso_stubs, login).user_id == login.user_id


def test_an_authorization_code_works_once(sso_stubs, oidc, new_username):
    _, request = code_login(sso_stubs, oidc, new_username("sso"))
    request.nonce = "another-nonce"
    error = rpc_error(lambda: sso_stubs.accounts.LoginSSO(request))
    assert error.code() == Code.UNAUTHENTICATED
    assert "refused the authorization code" in error.details()


def test_tampered_id_tokens_are_each_refused_with_unauthenticated(sso_stubs, oidc, keys):
    rsa_key, ec_key = keys
    now = int(time.time())
    counter = iter(range(1000))

    def fresh(**changes) -> tuple[str, dict]:
        nonce = f"forged-{now}-{next(counter)}"
        return nonce, oidc.claims(nonce, subject=f"mallory-{now}", **changes)

    def signed(**changes) -> tuple[str, str]:
        nonce, claims = fresh(**changes)
        return rsa_key.sign(claims), nonce

    def login(token: str, nonce: str):
        return sso_stubs.accounts.LoginSSO(account_pb2.LoginSSORequest(provider="local", id_token=token, nonce=nonce))

    # The control: a token signed with the provider's key, claims untouched, is accepted (so are ES256 ones).
    control, control_nonce = signed()
    assert login(control, control_nonce).user_id
    es_nonce, es_claims = fresh()
    assert login(ec_key.sign(es_claims), es_nonce).user_id
    other = SigningKey.rsa(rsa_key.kid)  # same key id, another key
    cases = {
        "bad signature": (other.sign(fresh()[1]), None, "signature does not verify"),
        "other iss": (*signed(iss="http://127.0.0.1:1"), "not issued by"),
        "other aud": (*signed(aud="someone-else"), "issued to another client"),
        "extra untrusted aud": (*signed(aud=["fittrack", "intruder"], azp="fittrack"), "does not trust"),
        "several aud without azp": (*signed(aud=["fittrack", "fittrack-mobile"]), "no authorized party"),
        "wrong azp": (*signed(azp="fittrack-mobile"), "another authorized party"),
        "expired": (*signed(exp=now - 61, iat=now - 400), "expired"),
        "issued in the future": (*signed(iat=now + 120, exp=now + 400), "issued in the future"),
        "not yet valid": (*signed(nbf=now + 120), "not valid yet"),
        "wrong nonce": (signed()[0], "some-other-nonce", "nonce does not match"),
        "replayed nonce": (control, control_nonce, "nonce was used already"),
        "alg none": (unsigned_token(fresh()[1], {"alg": "none", "kid": rsa_key.kid}) + ".", None, "algorithm"),
        "RS/HS key confusion": (hs256_with(rsa_key.public_pem(), fresh()[1], rsa_key.kid), None, "algorithm"),
        "HS256 keyed with the client secret": (
            hs256_with(CLIENT_SECRET.encode(), fresh()[1], rsa_key.kid),
            None,
            "algorithm",
        ),
        "unknown key id": (SigningKey.rsa("made-up").sign(fresh()[1]), None, "does not publish"),
    }
    wrong = {}
    for case, (token, nonce, complaint) in cases.items():
        nonce = nonce or nonce_claim(token)  # the request carries the token's own nonce unless the case is the nonce
        error = rpc_error(lambda token=token, nonce=nonce: login(token, nonce))
        if error.code() != Code.UNAUTHENTICATED or complaint not in error.details():
            wrong[case] = (error.code().name, error.details())
        elif token in error.details() or (nonce and nonce in error.details()):
            wrong[case] = ("message repeats the token or nonce", error.details())
    assert wrong == {}


def test_a_login_names_a_known_provider_and_the_parts_it_needs(sso_stubs, oidc):
    unknown = rpc_error(
        lambda: sso_stubs.accounts.LoginSSO(account_pb2.LoginSSORequest(provider="corp", id_token="t", nonce="n"))
    )
    assert unknown.code() == Code.NOT_FOUND
    assert "configured: local, down" in unknown.details()
    missing = rpc_error(
        lambda: sso_stubs.accounts.LoginSSO(
            account_pb2.LoginSSORequest(provider="local", authorization_code="c", nonce="n", redirect_uri=REDIRECT_URI)
        )
    )
    assert missing.code() == Code.INVALID_ARGUMENT
    assert "code_verifier is required" in missing.details()


def test_a_provider_that_cannot_be_reached_makes_the_login_unavailable(sso_stubs):
    request = account_pb2.LoginSSORequest(
        provider="down", authorization_code="c", code_verifier="v" * 43, redirect_uri=REDIRECT_URI, nonce="n"
    )
    error = rpc_error(lambda: sso_stubs.accounts.LoginSSO(request))
    assert error.code() == Code.UNAVAILABLE
    assert "cannot be reached" in error.details()


def test_the_providers_are_listed_without_a_token_and_without_the_secret(sso_stubs, oidc):
    listing = sso_stubs.accounts.ListSSOProviders(account_pb2.ListSSOProvidersRequest())
    assert [(p.name, p.issuer, p.client_id) for p in listing.providers] == [
        ("local", oidc.issuer, "fittrack"),
        ("down", "http://127.0.0.1:9", "fittrack"),
    ]
    assert list(listing.providers[0].scopes) == ["openid", "profile", "email"]
    assert CLIENT_SECRET not in str(listing)


def test_the_cli_logs_in_through_the_provider_with_a_loopback_redirect(sso_server, sso_stubs, oidc, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "FITTRACK_SERVER"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    base = [sys.executable, "-m", "fittrack.clients.cli", "--server", sso_server.address]
    cli = subprocess.Popen(
        [*base, "login", "--sso", "local", "--no-browser", "--sso-timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(cli.stderr), daemon=True).start()
    try:
        url = eventually(lambda: next((line for line in lines if line.startswith("http")), None), bool, timeout=30)
        assert "code_challenge_method=S256" in url and "nonce=" in url and "state=" in url
        authorize(url.strip(), f"cli-{time.monotonic_ns()}", follow_final_redirect=True)
        stdout, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, "".join(lines)
    assert "Logged in as cli-" in stdout and "through local" in stdout
    shown = subprocess.run([*base, "--json", "profile", "show"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["username"].startswith("cli-")


def test_sso_logins_are_audit_lines_naming_the_provider_the_account_and_the_address(
    sso_stubs, oidc, new_username, caplog
):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    login, request = code_login(sso_stubs, oidc, new_username("audited"))
    request.nonce = "another-nonce"
    assert rpc_error(lambda: sso_stubs.accounts.LoginSSO(request)).code() == Code.UNAUTHENTICATED
    audited = [record for record in caplog.records if record.name == AUDIT_LOGGER]
    common = {"event": "login_attempted", "method": "sso", "address": "127.0.0.1", "provider": "local"}
    assert [record.audit for record in audited] == [
        {**common, "outcome": "success", "user_id": login.user_id},
        {**common, "outcome": "failure", "user_id": None},
    ]
    assert audited[0].getMessage() == (
        f"login_attempted method=sso outcome=success user_id={login.user_id} address=127.0.0.1 provider=local"
    )
    assert request.authorization_code not in caplog.text and login.access_token not in caplog.text
