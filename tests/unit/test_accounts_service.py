"""Registering, logging in, sessions, password expiry and account deletion."""

from datetime import timedelta

import pytest

from fittrack.app.config import Config
from fittrack.core.adapters.tokens import JwtSigner
from fittrack.core.domain.accounts import Principal, ProfileChanges
from fittrack.core.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unauthenticated,
)
from fittrack.core.domain.metrics import MetricKind
from tests.unit.fakes import PASSWORD, FakeApp, fake_app

NEW_PASSWORD = "a brand new secret"


@pytest.fixture
def app() -> FakeApp:
    return fake_app()


def register(app: FakeApp, username: str = "alice", password: str = PASSWORD, time_zone: str = "Europe/Paris"):
    return app.accounts.register(username, password, ProfileChanges(time_zone=time_zone))


# --- register ------------------------------------------------------------------


def test_register_stores_the_username_in_lower_case(app):
    account = register(app, "  Alice.Smith ")
    assert account.user.username == "alice.smith"
    assert app.database.user_named("alice.smith").user_id == account.user.user_id


def test_a_user_can_log_in_with_the_username_in_any_case(app):
    register(app, "Alice")
    assert app.accounts.login("ALICE", PASSWORD).access_token


def test_registering_a_taken_username_in_another_case_is_refused(app):
    register(app, "alice")
    with pytest.raises(AlreadyExists, match="taken"):
        register(app, "ALICE", password="another password")
    assert len(app.database.state.users) == 1


@pytest.mark.parametrize("password", ["", "seven77", "x" * 129])
def test_a_password_too_short_or_too_long_is_refused_and_nothing_is_stored(app, password):
    with pytest.raises(InvalidArgument, match="password must be at"):
        register(app, password=password)
    assert app.database.state.users == {}


@pytest.mark.parametrize("password", ["eight888", "x" * 128])
def test_a_password_of_8_or_128_characters_is_accepted(app, password):
    register(app, password=password)
    assert app.accounts.login("alice", password).access_token


@pytest.mark.parametrize("username", ["al", "a" * 33, "alice smith", "élodie", ""])
def test_a_username_that_breaks_the_rules_is_refused(app, username):
    with pytest.raises(InvalidArgument, match="username must be 3 to 32 characters"):
        register(app, username)


def test_a_failed_registration_with_an_invalid_time_zone_stores_nothing(app):
    with pytest.raises(InvalidArgument, match="time zone"):
        register(app, time_zone="Mars/Olympus_Mons")
    assert app.database.state.users == {}
    assert app.database.state.credentials == {}
    # The name is still free.
    register(app)


def test_a_new_account_carries_its_profile_and_a_password_expiry_90_days_out(app):
    account = register(app, time_zone="America/New_York")
    assert account.user.profile.time_zone == "America/New_York"
    assert account.password_expires_at == app.clock() + timedelta(days=90)


def test_the_password_is_not_stored_in_clear(app):
    account = register(app)
    stored = app.database.state.credentials[account.user.user_id].password_hash
    assert stored != PASSWORD.encode()
    assert app.hasher.verify(PASSWORD, stored)


# --- login ---------------------------------------------------------------------


def test_login_returns_a_session_whose_access_token_authenticates_the_user(app):
    account = register(app)
    session = app.accounts.login("alice", PASSWORD)
    principal = app.accounts.authenticate(session.access_token)
    assert principal.user_id == account.user.user_id
    assert session.refresh_token
    assert session.password_expires_at == account.password_expires_at


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(app):
    register(app)
    with pytest.raises(Unauthenticated) as wrong_password:
        app.accounts.login("alice", "not the password")
    with pytest.raises(Unauthenticated) as unknown_user:
        app.accounts.login("nobody", PASSWORD)
    assert str(wrong_password.value) == str(unknown_user.value)


def test_an_unknown_user_costs_as_much_time_as_a_wrong_password(app):
    with pytest.raises(Unauthenticated):
        app.accounts.login("nobody", PASSWORD)
    assert app.hasher.wasted == [PASSWORD]


def test_an_expired_password_blocks_login_and_points_to_change_password(app):
    register(app)
    app.clock.advance(timedelta(days=90))
    with pytest.raises(FailedPrecondition, match="ChangePassword"):
        app.accounts.login("alice", PASSWORD)


def test_a_password_one_second_short_of_90_days_still_works(app):
    register(app)
    app.clock.advance(timedelta(days=90) - timedelta(seconds=1))
    assert app.accounts.login("alice", PASSWORD).access_token


def test_an_expired_password_with_a_wrong_guess_reveals_nothing_about_expiry(app):
    register(app)
    app.clock.advance(timedelta(days=91))
    with pytest.raises(Unauthenticated):
        app.accounts.login("alice", "not the password")


def test_with_a_max_age_of_zero_passwords_never_expire():
    app = fake_app(config=Config(password_max_age_days=0))
    account = register(app)
    assert account.password_expires_at is None
    app.clock.advance(timedelta(days=3650))
    assert app.accounts.login("alice", PASSWORD).password_expires_at is None


# --- tokens and sessions -------------------------------------------------------


def test_an_access_token_stops_working_when_it_expires(app):
    register(app)
    session = app.accounts.login("alice", PASSWORD)
    app.clock.set(session.access_expires_at)
    with pytest.raises(Unauthenticated, match="expired"):
        app.accounts.authenticate(session.access_token)


def test_an_access_token_signed_with_another_key_is_refused(app):
    register(app)
    session = app.accounts.login("alice", PASSWORD)
    genuine = app.accounts.authenticate(session.access_token)
    forged, _ = JwtSigner(b"x" * 32, timedelta(minutes=15)).issue(genuine.user_id, genuine.session_id, app.clock())
    with pytest.raises(Unauthenticated, match="signature"):
        app.accounts.authenticate(forged)


def test_refresh_gives_a_new_working_pair_of_tokens(app):
    register(app)
    first = app.accounts.login("alice", PASSWORD)
    app.clock.advance(timedelta(minutes=20))
    second = app.accounts.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert app.accounts.authenticate(second.access_token).user_id == first.user_id


def test_a_refresh_token_works_only_once(app):
    register(app)
    first = app.accounts.login("alice", PASSWORD)
    app.accounts.refresh(first.refresh_token)
    with pytest.raises(Unauthenticated, match="already used"):
        app.accounts.refresh(first.refresh_token)


def test_reusing_a_refresh_token_ends_the_session_so_the_rotated_tokens_fail_too(app):
    register(app)
    first = app.accounts.login("alice", PASSWORD)
    second = app.accounts.refresh(first.refresh_token)
    with pytest.raises(Unauthenticated):
        app.accounts.refresh(first.refresh_token)  # a thief replays the stolen token
    with pytest.raises(Unauthenticated, match="session"):
        app.accounts.refresh(second.refresh_token)
    with pytest.raises(Unauthenticated, match="session of this token has ended"):
        app.accounts.authenticate(second.access_token)


def test_reusing_a_refresh_token_does_not_end_the_users_other_sessions(app):
    register(app)
    phone = app.accounts.login("alice", PASSWORD)
    laptop = app.accounts.login("alice", PASSWORD)
    app.accounts.refresh(phone.refresh_token)
    with pytest.raises(Unauthenticated):
        app.accounts.refresh(phone.refresh_token)
    assert app.accounts.authenticate(laptop.access_token).user_id == laptop.user_id


def test_an_expired_refresh_token_is_refused(app):
    register(app)
    session = app.accounts.login("alice", PASSWORD)
    app.clock.set(session.refresh_expires_at)
    with pytest.raises(Unauthenticated, match="expired"):
        app.accounts.refresh(session.refresh_token)


@pytest.mark.parametrize("token", ["", "made-up"])
def test_a_missing_or_unknown_refresh_token_is_refused(app, token):
    with pytest.raises(Unauthenticated):
        app.accounts.refresh(token)


def test_logout_ends_the_session(app):
    register(app)
    session = app.accounts.login("alice", PASSWORD)
    principal = app.accounts.authenticate(session.access_token)
    app.accounts.logout(principal)
    with pytest.raises(Unauthenticated, match="ended"):
        app.accounts.authenticate(session.access_token)
    with pytest.raises(Unauthenticated):
        app.accounts.refresh(session.refresh_token)


def test_logout_leaves_the_users_other_sessions_open(app):
    register(app)
    phone = app.accounts.login("alice", PASSWORD)
    laptop = app.accounts.login("alice", PASSWORD)
    app.accounts.logout(app.accounts.authenticate(phone.access_token))
    assert app.accounts.authenticate(laptop.access_token).user_id == laptop.user_id


# --- profile -------------------------------------------------------------------


def test_a_profile_change_is_saved_and_returned(app):
    principal = app.sign_up("alice")
    account = app.accounts.update_profile(principal, ProfileChanges(display_name="  Alice  ", height_cm=170))
    assert (account.user.profile.display_name, account.user.profile.height_cm) == ("Alice", 170.0)
    assert app.accounts.profile(principal).user.profile.display_name == "Alice"


def test_an_impossible_profile_change_is_refused_and_changes_nothing(app):
    principal = app.sign_up("alice", time_zone="Europe/Paris")
    with pytest.raises(InvalidArgument, match="weight_kg"):
        app.accounts.update_profile(principal, ProfileChanges(time_zone="UTC", weight_kg=1000))
    assert app.accounts.profile(principal).user.profile.time_zone == "Europe/Paris"


# --- change password -----------------------------------------------------------


def test_a_user_with_an_expired_password_can_set_a_new_one_with_username_and_current_password(app):
    register(app)
    app.clock.advance(timedelta(days=100))
    expires = app.accounts.change_password(None, "Alice", PASSWORD, NEW_PASSWORD)
    assert expires == app.clock() + timedelta(days=90)
    assert app.accounts.login("alice", NEW_PASSWORD).access_token
    with pytest.raises(Unauthenticated):
        app.accounts.login("alice", PASSWORD)


def test_changing_the_password_ends_every_other_session(app):
    register(app)
    other = app.accounts.login("alice", PASSWORD)
    current = app.accounts.login("alice", PASSWORD)
    principal = app.accounts.authenticate(current.access_token)
    app.accounts.change_password(principal, "", PASSWORD, NEW_PASSWORD)
    with pytest.raises(Unauthenticated):
        app.accounts.authenticate(other.access_token)
    with pytest.raises(Unauthenticated):
        app.accounts.refresh(other.refresh_token)


def test_changing_the_password_with_a_wrong_current_password_changes_nothing(app):
    register(app)
    session = app.accounts.login("alice", PASSWORD)
    # Without a token this is a login by another name: the same answer as for an unknown user.
    with pytest.raises(Unauthenticated, match="unknown username or wrong password"):
        app.accounts.change_password(None, "alice", "not the password", NEW_PASSWORD)
    assert app.accounts.login("alice", PASSWORD).access_token
    assert app.accounts.authenticate(session.access_token)


def test_changing_the_password_of_an_unknown_user_gives_the_login_answer(app):
    with pytest.raises(Unauthenticated, match="unknown username or wrong password"):
        app.accounts.change_password(None, "nobody", PASSWORD, NEW_PASSWORD)


def test_changing_the_password_without_token_or_username_is_refused(app):
    with pytest.raises(Unauthenticated, match="bearer token"):
        app.accounts.change_password(None, "", PASSWORD, NEW_PASSWORD)


def test_the_new_password_must_differ_from_the_current_one(app):
    register(app)
    with pytest.raises(InvalidArgument, match="must differ"):
        app.accounts.change_password(None, "alice", PASSWORD, PASSWORD)


def test_the_new_password_must_obey_the_length_rules(app):
    register(app)
    with pytest.raises(InvalidArgument, match="at least 8"):
        app.accounts.change_password(None, "alice", PASSWORD, "short")
    assert app.accounts.login("alice", PASSWORD).access_token


# --- delete account ------------------------------------------------------------


def seed_data(app: FakeApp, principal: Principal) -> None:
    app.goals.create(principal, MetricKind.STEPS, 1, 10_000)
    minute = int(app.clock().timestamp()) - 3600
    app.upload(principal, [(MetricKind.STEPS, minute, 100)])


def test_deleting_an_account_with_a_wrong_password_deletes_nothing(app):
    principal = app.sign_up("alice")
    seed_data(app, principal)
    with pytest.raises(Unauthenticated, match="not deleted"):
        app.accounts.delete_account(principal, "not the password")
    assert app.accounts.profile(principal).user.username == "alice"
    assert len(app.goals.list(principal, include_inactive=True)) == 1
    assert app.store.holds_anything_of(principal.user_id)
    assert app.accounts.authenticate(app.accounts.login("alice", PASSWORD).access_token)


def test_deleting_an_account_removes_the_user_their_goals_and_their_metrics(app):
    principal = app.sign_up("alice")
    seed_data(app, principal)
    app.accounts.delete_account(principal, PASSWORD)
    assert app.database.state.users == {}
    assert app.database.state.goals == {}
    assert not app.store.holds_anything_of(principal.user_id)
    with pytest.raises(Unauthenticated):
        app.accounts.login("alice", PASSWORD)
    with pytest.raises(Unauthenticated):
        app.accounts.profile(principal)


def test_a_deleted_username_can_be_registered_again(app):
    principal = app.sign_up("alice")
    app.accounts.delete_account(principal, PASSWORD)
    assert register(app).user.user_id != principal.user_id
