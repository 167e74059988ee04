"""Single sign-on: the ID token claims rules, the providers' configuration, and LoginSSO with fakes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fittrack.app.config import Config, ConfigError
from fittrack.app.setting_values import parse_oidc_providers
from fittrack.core.domain.accounts import ProfileChanges
from fittrack.core.domain.errors import InvalidArgument, NotFound, Unauthenticated, Unavailable
from fittrack.core.domain.oidc import ProviderSettings, VerifiedIdentity, check_claims, username_base
from fittrack.core.services.accounts import Accounts, AccountSettings
from tests.unit.fakes import (
    PASSWORD,
    FakeAccountsDatabase,
    FakeClock,
    FakeHasher,
    FakeIdentityProvider,
    FakeMetricStore,
    make_signer,
)

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
ISSUER = "https://id.example.test"
PROVIDER = ProviderSettings(
    name="corp",
    issuer=ISSUER,
    client_id="fittrack",
    client_secret="s3cret",
    trusted_audiences=("fittrack-mobile",),
    redirect_uris=("http://127.0.0.1/callback", "https://app.example.test/sso"),
)
VERIFIER = "v" * 43


def claims(**changes) -> dict:
    """Valid claims for PROVIDER at T0 with `changes`; a None value removes the claim."""
    base = {
        "iss": ISSUER,
        "sub": "248289761001",
        "aud": "fittrack",
        "iat": int(T0.timestamp()),
        "exp": int((T0 + timedelta(minutes=5)).timestamp()),
        "nonce": "n-1",
        "preferred_username": "Jane.Doe",
        "email": "jane@example.test",
        "name": "Jane Doe",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


# --- the claims rules -------------------------------------------------------------


def test_valid_claims_prove_the_issuer_and_subject():
    identity = check_claims(claims(), PROVIDER, "n-1", T0)
    assert (identity.issuer, identity.subject, identity.nonce) == (ISSUER, "248289761001", "n-1")
    assert identity.expires_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"iss": ISSUER + "/"}, "not issued by corp's issuer"),
        ({"iss": "https://evil.example.test"}, "not issued by corp's issuer"),
        ({"sub": None}, "subject"),
        ({"sub": ""}, "subject"),
        ({"aud": "someone-else"}, "another client"),
        ({"aud": ["fittrack", "someone-else"], "azp": "fittrack"}, "does not trust"),
        ({"aud": ["fittrack", "fittrack-mobile"]}, "no authorized party"),
        ({"azp": "fittrack-mobile"}, "another authorized party"),
        ({"aud": 7}, "no valid audience"),
        ({"exp": int((T0 - timedelta(seconds=61)).timestamp())}, "expired"),
        ({"exp": None}, "exp is missing"),
        ({"exp": True}, "exp is missing"),
        ({"iat": int((T0 + timedelta(seconds=61)).timestamp())}, "issued in the future"),
        ({"nbf": int((T0 + timedelta(seconds=61)).timestamp())}, "not valid yet"),
        ({"nonce": "n-2"}, "nonce does not match"),
        ({"nonce": None}, "nonce does not match"),
    ],
)
def test_claims_breaking_a_rule_are_refused_saying_which(changes, complaint):
    with pytest.raises(Unauthenticated, match=complaint):
        check_claims(claims(**changes), PROVIDER, "n-1", T0)


def test_the_clocks_may_differ_by_up_to_a_minute():
    late = claims(exp=int((T0 - timedelta(seconds=59)).timestamp()))
    early = claims(iat=int((T0 + timedelta(seconds=59)).timestamp()), nbf=int((T0 + timedelta(seconds=59)).timestamp()))
    assert check_claims(late, PROVIDER, "n-1", T0).subject
    assert check_claims(early, PROVIDER, "n-1", T0).subject


def test_a_trusted_second_audience_is_accepted_when_we_are_the_authorized_party():
    identity = check_claims(claims(aud=["fittrack", "fittrack-mobile"], azp="fittrack"), PROVIDER, "n-1", T0)
    assert identity.subject == "248289761001"


def test_a_request_without_a_nonce_is_refused_even_when_the_token_has_none():
    with pytest.raises(Unauthenticated, match="no nonce"):
        check_claims(claims(nonce=None), PROVIDER, "", T0)


def test_a_loopback_redirect_uri_may_use_any_port_and_others_must_match_exactly():
    assert PROVIDER.redirect_allowed("http://127.0.0.1:53123/callback")
    assert PROVIDER.redirect_allowed("https://app.example.test/sso")
    assert not PROVIDER.redirect_allowed("http://127.0.0.1:53123/other")
    assert not PROVIDER.redirect_allowed("https://app.example.test:8443/sso")
    assert not PROVIDER.redirect_allowed("http://localhost:53123/callback")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"preferred_username": "Jane.Doe"}, "jane.doe"),
        ({"preferred_username": "", "email": "Zoë+fit@example.test"}, "zoe-fit"),
        ({"preferred_username": "名前"}, "user-sso"),
        ({"preferred_username": "x"}, "x-sso"),
        ({"preferred_username": "a" * 40}, "a" * 26),
    ],
)
def test_a_new_accounts_username_comes_from_the_preferred_username_or_the_email(given, expected):
    identity = VerifiedIdentity(ISSUER, "s", "n", T0, **given)
    assert username_base(identity) == expected


# --- configuration ----------------------------------------------------------------


def provider_json(**changes) -> dict:
    entry = {
        "name": "corp",
        "issuer": ISSUER,
        "client_id": "fittrack",
        "client_secret": "s3cret",
        "redirect_uris": ["http://127.0.0.1/callback"],
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


def test_providers_are_read_from_json_or_from_a_file(tmp_path):
    text = json.dumps([provider_json(), provider_json(name="google", issuer="https://accounts.google.com")])
    (tmp_path / "providers.json").write_text(text)
    for raw in (text, str(tmp_path / "providers.json")):
        providers = Config.from_env({"FITTRACK_OIDC_PROVIDERS": raw}).oidc_provider_settings()
        assert [p.name for p in providers] == ["corp", "google"]
        assert providers[0].allowed_algorithms == ("RS256",)
        assert providers[0].client_secret == "s3cret"


def test_the_client_secret_is_never_shown_by_repr():
    config = Config.from_env({"FITTRACK_OIDC_PROVIDERS": json.dumps([provider_json()])})
    assert "s3cret" not in repr(config)
    assert "s3cret" not in repr(config.oidc_provider_settings())


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ("[{", "not valid JSON"),
        ("/nonexistent/providers.json", "cannot be read"),
        ('{"name": "corp"}', "cannot be read"),
        ([provider_json(name="Corp!")], "name must be"),
        ([provider_json(issuer="http://id.example.test")], "https://"),
        ([provider_json(client_id=None)], "client_id must be"),
        ([provider_json(allowed_algorithms=["HS256"])], "never HS"),
        ([provider_json(allowed_algorithms=["none"])], "never HS"),
        ([provider_json(redirect_uris=["http://app.example.test/cb"])], "redirect_uris"),
        ([provider_json(scopes=["profile"])], "openid"),
        ([provider_json(client_secrett="typo")], "unknown keys client_secrett"),
        ([provider_json(), provider_json()], "unique"),
    ],
)
def test_a_bad_provider_setting_stops_the_start_saying_what_to_fix(entries, complaint):
    raw = entries if isinstance(entries, str) else json.dumps(entries)
    with pytest.raises(ConfigError, match=complaint) as caught:
        Config.from_env({"FITTRACK_OIDC_PROVIDERS": raw})
    assert "s3cret" not in str(caught.value)


def test_no_providers_configured_means_none():
    assert parse_oidc_providers("") == ()


# --- LoginSSO with fakes ----------------------------------------------------------


class Sso:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.database = FakeAccountsDatabase()
        self.provider = FakeIdentityProvider(PROVIDER)
        self.accounts = Accounts(
            self.database,
            FakeMetricStore(),
            FakeHasher(),
            make_signer(),
            self.clock,
            AccountSettings(),
            identity_providers={"corp": self.provider},
        )

    def login(self, nonce: str = "n-1", **changes):
        token = self.provider.issue(claims(nonce=nonce, **changes))
        return self.accounts.login_sso("corp", id_token=token, nonce=nonce)


@pytest.fixture
def sso() -> Sso:
    return Sso()


def test_the_first_sso_login_makes_an_account_without_a_password(sso):
    session = sso.login()
    principal = sso.accounts.authenticate(session.access_token)
    account = sso.accounts.profile(principal)
    assert account.user.username == "jane.doe"
    assert account.user.profile.display_name == "Jane Doe"
    assert account.password_expires_at is None
    assert sso.database.state.credentials.get(session.user_id) is None
    with pytest.raises(Unauthenticated, match="unknown username or wrong password"):
        sso.accounts.login("jane.doe", PASSWORD)


def test_later_sso_logins_find_the_same_account(sso):
    first = sso.login("n-1")
    second = sso.login("n-2", name="Jane D.", preferred_username="jdoe")
    assert second.user_id == first.user_id
    assert len(sso.database.state.users) == 1


def test_accounts_are_linked_by_issuer_and_subject_never_by_email(sso):
    sso.accounts.register("jane.doe", PASSWORD, ProfileChanges())
    first = sso.login("n-1", sub="subject-a", email="jane@example.test")
    second = sso.login("n-2", sub="subject-b", email="jane@example.test")
    password_user = sso.database.user_named("jane.doe").user_id
    assert len({first.user_id, second.user_id, password_user}) == 3
    assert sso.database.user_named("jane.doe").user_id == password_user
    usernames = {user.username for user in sso.database.state.users.values()}
    assert all(name.startswith("jane.doe") for name in usernames) and len(usernames) == 3


def test_an_sso_account_can_update_its_profile(sso):
    principal = sso.accounts.authenticate(sso.login().access_token)
    account = sso.accounts.update_profile(principal, ProfileChanges(height_cm=170))
    assert account.user.profile.height_cm == 170
    assert account.password_expires_at is None


def test_a_replayed_id_token_is_refused_and_changes_nothing(sso):
    token = sso.provider.issue(claims())
    sso.accounts.login_sso("corp", id_token=token, nonce="n-1")
    before = (len(sso.database.state.sessions), len(sso.database.state.users))
    with pytest.raises(Unauthenticated, match="nonce was used already"):
        sso.accounts.login_sso("corp", id_token=token, nonce="n-1")
    assert (len(sso.database.state.sessions), len(sso.database.state.users)) == before


def test_a_refused_first_login_makes_no_account(sso):
    with pytest.raises(Unauthenticated, match="another client"):
        sso.login(aud="someone-else")
    assert sso.database.state.users == {} and sso.database.state.used_nonces == {}


def test_an_authorization_code_is_redeemed_with_its_verifier_and_redirect_uri(sso):
    redirect = "http://127.0.0.1:50000/callback"
    code = sso.provider.grant(sso.provider.issue(claims()), VERIFIER, redirect)
    session = sso.accounts.login_sso(
        "corp", authorization_code=code, code_verifier=VERIFIER, redirect_uri=redirect, nonce="n-1"
    )
    assert sso.accounts.authenticate(session.access_token).user_id == session.user_id


@pytest.mark.parametrize(
    ("request_fields", "error", "complaint"),
    [
        ({"provider": "", "id_token": "t"}, InvalidArgument, "provider is required.*corp"),
        ({"provider": "github", "id_token": "t"}, NotFound, "no SSO provider is named 'github'; configured: corp"),
        ({"nonce": ""}, InvalidArgument, "nonce is required"),
        ({"nonce": "n" * 256}, InvalidArgument, "nonce is required"),
        ({"id_token": ""}, InvalidArgument, "send id_token, or authorization_code"),
        ({"authorization_code": "c"}, InvalidArgument, "not both"),
        ({"id_token": "", "authorization_code": "c"}, InvalidArgument, "redirect_uri is required"),
        (
            {"id_token": "", "authorization_code": "c", "redirect_uri": "https://evil.example.test/cb"},
            InvalidArgument,
            "not one corp logins may use",
        ),
        (
            {"id_token": "", "authorization_code": "c", "redirect_uri": "http://127.0.0.1:5/callback"},
            InvalidArgument,
            "code_verifier is required",
        ),
    ],
)
def test_an_incomplete_request_says_what_is_missing(sso, request_fields, error, complaint):
    fields = {"provider": "corp", "id_token": sso.provider.issue(claims()), "nonce": "n-1", **request_fields}
    provider = fields.pop("provider")
    with pytest.raises(error, match=complaint):
        sso.accounts.login_sso(provider, **fields)
    assert sso.database.state.users == {}


def test_a_provider_that_is_down_makes_the_login_unavailable(sso):
    sso.provider.down = True
    with pytest.raises(Unavailable, match="cannot be reached"):
        sso.login()


def test_the_provider_list_shows_each_configured_provider(sso):
    assert sso.accounts.sso_providers() == [PROVIDER]
    assert "s3cret" not in repr(replace(PROVIDER))
