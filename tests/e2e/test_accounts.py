"""Accounts over the real server: registration, login, sessions, profile, passwords."""

import re
from datetime import timedelta

import grpc
import pytest
from google.type.date_pb2 import Date

from fittrack.generated.v1 import account_pb2
from tests.support import PASSWORD, register_and_login, rpc_error

Code = grpc.StatusCode


def username_is_valid(name: str) -> bool:
    return re.fullmatch(r"[a-z0-9._-]{3,32}", name) is not None


def register(stubs, username, password=PASSWORD, **profile):
    request = account_pb2.RegisterRequest(
        username=username, password=password, profile=account_pb2.ProfileFields(**profile)
    )
    return stubs.accounts.Register(request)


def login(stubs, username, password=PASSWORD):
    return stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=password))


def bearer(token):
    return [("authorization", f"Bearer {token}")]


def test_registration_keeps_the_details_given(stubs, new_username):
    name = new_username("carol")
    response = register(
        stubs,
        name.upper(),
        display_name="Carol K",
        height_cm=168.5,
        weight_kg=61,
        birth_date=Date(year=1990, month=5, day=17),
        sex=account_pb2.SEX_FEMALE,
        time_zone="Asia/Tokyo",
    )
    profile = response.profile
    assert profile.username == name
    assert (profile.display_name, profile.height_cm, profile.weight_kg) == ("Carol K", 168.5, 61)
    assert (profile.birth_date.year, profile.birth_date.month, profile.birth_date.day) == (1990, 5, 17)
    assert profile.age_years >= 36
    assert profile.sex == account_pb2.SEX_FEMALE
    assert profile.time_zone == "Asia/Tokyo"
    assert profile.user_id


def test_the_password_expires_three_months_after_it_was_set(stubs, alice):
    profile = stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth)
    lifetime = profile.password_expires_at.ToDatetime() - profile.created_at.ToDatetime()
    assert timedelta(days=89) < lifetime <= timedelta(days=90)
    assert alice.login.password_expires_at == profile.password_expires_at


def test_a_taken_username_is_refused_whatever_its_letter_case(stubs, alice):
    error = rpc_error(lambda: register(stubs, alice.username.upper()))
    assert error.code() == Code.ALREADY_EXISTS
    assert "taken" in error.details()


@pytest.mark.parametrize(
    ("username", "password", "profile", "complaint"),
    [
        ("dave", "short", {}, "at least 8"),
        ("dave", "x" * 129, {}, "at most 128"),
        ("d", PASSWORD, {}, "username"),
        ("dave smith", PASSWORD, {}, "username"),
        ("dave", PASSWORD, {"time_zone": "Mars/Olympus"}, "time zone"),
        ("dave", PASSWORD, {"height_cm": 20}, "height_cm"),
        ("dave", PASSWORD, {"weight_kg": -3}, "weight_kg"),
        ("dave", PASSWORD, {"age_years": 200}, "age_years"),
        ("dave", PASSWORD, {"birth_date": Date(year=2199, month=1, day=1)}, "future"),
        ("dave", PASSWORD, {"birth_date": Date(year=2001, month=2, day=30)}, "calendar date"),
    ],
)
def test_an_impossible_registration_is_refused_and_stores_nothing(
    stubs, new_username, username, password, profile, complaint
):
    if username == "dave":
        username = new_username("dave")
    error = rpc_error(lambda: register(stubs, username, password, **profile))
    assert error.code() == Code.INVALID_ARGUMENT
    assert complaint in error.details()
    if username_is_valid(username):
        # Nothing was stored: the same username registers fine afterwards.
        assert register(stubs, username).profile.username == username


def test_login_answers_the_same_for_an_unknown_user_and_a_wrong_password(stubs, alice):
    wrong_password = rpc_error(lambda: login(stubs, alice.username, "not the password"))
    unknown_user = rpc_error(lambda: login(stubs, "nobody-here", PASSWORD))
    assert wrong_password.code() == unknown_user.code() == Code.UNAUTHENTICATED
    assert wrong_password.details() == unknown_user.details()


def test_login_ignores_the_letter_case_of_the_username(stubs, alice):
    assert login(stubs, alice.username.upper()).user_id == alice.user_id


def test_an_expired_password_blocks_login_until_it_is_changed(stubs, alice, clock):
    clock.advance(timedelta(days=91))
    error = rpc_error(lambda: login(stubs, alice.username))
    assert error.code() == Code.FAILED_PRECONDITION
    assert "ChangePassword" in error.details()

    change = account_pb2.ChangePasswordRequest(
        username=alice.username, current_password=PASSWORD, new_password="a brand new secret"
    )
    changed = stubs.accounts.ChangePassword(change)
    assert changed.password_expires_at.ToDatetime() > clock().replace(tzinfo=None) + timedelta(days=89)
    assert login(stubs, alice.username, "a brand new secret").user_id == alice.user_id


def test_changing_the_password_ends_the_other_sessions_but_not_the_callers(stubs, alice):
    other_session = login(stubs, alice.username)
    stubs.accounts.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="another long secret"),
        metadata=alice.auth,
    )
    error = rpc_error(
        lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(other_session.access_token))
    )
    assert error.code() == Code.UNAUTHENTICATED
    assert stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth).user_id == alice.user_id
    assert rpc_error(lambda: login(stubs, alice.username)).code() == Code.UNAUTHENTICATED


def test_a_wrong_current_password_changes_nothing(stubs, alice):
    error = rpc_error(
        lambda: stubs.accounts.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password="wrong one!", new_password="another long secret"),
            metadata=alice.auth,
        )
    )
    assert error.code() == Code.UNAUTHENTICATED
    assert login(stubs, alice.username).user_id == alice.user_id


def test_change_password_without_token_or_username_is_unauthenticated(stubs):
    error = rpc_error(
        lambda: stubs.accounts.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="another long secret")
        )
    )
    assert error.code() == Code.UNAUTHENTICATED


def test_a_refresh_token_gives_a_new_session_once(stubs, alice):
    refreshed = stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=alice.login.refresh_token))
    profile = stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(refreshed.access_token))
    assert profile.user_id == alice.user_id
    assert refreshed.refresh_token != alice.login.refresh_token

    reused = rpc_error(
        lambda: stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=alice.login.refresh_token))
    )
    assert reused.code() == Code.UNAUTHENTICATED
    # Reuse means the token leaked: the session it belongs to is over.
    after_reuse = rpc_error(
        lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(refreshed.access_token))
    )
    assert after_reuse.code() == Code.UNAUTHENTICATED


def test_an_unknown_refresh_token_is_unauthenticated(stubs):
    error = rpc_error(lambda: stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token="made-up")))
    assert error.code() == Code.UNAUTHENTICATED


def test_logout_ends_the_session(stubs, alice):
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
    error = rpc_error(lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth))
    assert error.code() == Code.UNAUTHENTICATED
    refresh = rpc_error(
        lambda: stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=alice.login.refresh_token))
    )
    assert refresh.code() == Code.UNAUTHENTICATED


def test_an_access_token_stops_working_after_fifteen_minutes(stubs, alice, clock):
    clock.advance(timedelta(minutes=15, seconds=1))
    error = rpc_error(lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth))
    assert error.code() == Code.UNAUTHENTICATED
    assert "expired" in error.details()


@pytest.mark.parametrize(
    "metadata",
    [
        [],
        [("authorization", "Bearer")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("authorization", "Bearer not.a.jwt")],
        [("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")],
    ],
)
def test_a_missing_or_malformed_token_is_unauthenticated(stubs, metadata):
    error = rpc_error(lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=metadata))
    assert error.code() == Code.UNAUTHENTICATED
    assert error.details()


def test_a_token_signed_with_another_key_is_unauthenticated(stubs, alice):
    import jwt

    claims = jwt.decode(alice.login.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another secret that is long enough!!", algorithm="HS256")
    error = rpc_error(lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(forged)))
    assert error.code() == Code.UNAUTHENTICATED


def test_profile_updates_change_only_the_fields_sent(stubs, alice):
    update = account_pb2.UpdateProfileRequest(profile=account_pb2.ProfileFields(weight_kg=70.5, age_years=41))
    profile = stubs.accounts.UpdateProfile(update, metadata=alice.auth)
    assert profile.weight_kg == 70.5
    assert profile.age_years == 41
    assert profile.time_zone == "Europe/Paris"
    assert stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth) == profile


def test_an_invalid_profile_update_changes_nothing(stubs, alice):
    before = stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth)
    update = account_pb2.UpdateProfileRequest(profile=account_pb2.ProfileFields(weight_kg=80, time_zone="Nowhere/City"))
    error = rpc_error(lambda: stubs.accounts.UpdateProfile(update, metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "Nowhere/City" in error.details()
    assert stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=alice.auth) == before


def test_login_sso_with_a_provider_the_server_does_not_know_is_not_found(stubs):
    error = rpc_error(
        lambda: stubs.accounts.LoginSSO(account_pb2.LoginSSORequest(provider="corp", id_token="x", nonce="n"))
    )
    assert error.code() == Code.NOT_FOUND
    assert "none are configured" in error.details()


def test_deleting_an_account_needs_the_password_and_removes_the_login(stubs, alice):
    wrong = rpc_error(
        lambda: stubs.accounts.DeleteAccount(account_pb2.DeleteAccountRequest(password="wrong!!!"), metadata=alice.auth)
    )
    assert wrong.code() == Code.UNAUTHENTICATED
    assert login(stubs, alice.username).user_id == alice.user_id

    stubs.accounts.DeleteAccount(account_pb2.DeleteAccountRequest(password=PASSWORD), metadata=alice.auth)
    assert rpc_error(lambda: login(stubs, alice.username)).code() == Code.UNAUTHENTICATED
    # The name is free again, for a brand-new account.
    assert register_and_login(stubs, alice.username).user_id != alice.user_id
