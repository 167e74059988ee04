"""Account security over the real server, on both profiles: token keys and rotation, refresh reuse,
password rules, brute-force limits, and password-expiry warnings and notifications."""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import jwt
import pytest

from fittrack.app.wiring import evaluation_schedule
from fittrack.app.worker_parts import build_evaluator
from fittrack.generated.v1 import account_pb2, notification_pb2
from tests.support import PASSWORD, RunningServer, Stubs, eventually, register_and_login, rpc_error

Code = grpc.StatusCode
KEY_1 = "k1-" + "1" * 40
KEY_2 = "k2-" + "2" * 40
# A zone no other test uses: the production profile's database is shared by a run's tests.
MARQUESAS = "Pacific/Marquesas"  # UTC-9:30


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "token-keys.json"
    write_keys(path, "k1", k1=KEY_1)
    return path


@pytest.fixture
def server_config(server_config, keys_file):
    """The profile's server signing with a keys file that it looks at on every use."""
    return dataclasses.replace(server_config, token_keys_file=str(keys_file), token_keys_recheck_seconds=0)


def write_keys(path, current: str, **keys: str) -> None:
    path.write_text(json.dumps({"current": current, "keys": keys}))


def bearer(token: str):
    return [("authorization", f"Bearer {token}")]


def profile_of(stubs, token: str):
    return stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(token))


def login(stubs, username: str, password: str = PASSWORD):
    return stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=password))


def refresh(stubs, token: str):
    return stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=token))


# --- our own tokens ----------------------------------------------------------------------


def test_rotating_the_keys_file_signs_new_tokens_with_the_new_key_and_old_ones_work_until_it_is_removed(
    stubs, alice, keys_file
):
    old = alice.login.access_token
    assert jwt.get_unverified_header(old)["kid"] == "k1"

    write_keys(keys_file, "k2", k1=KEY_1, k2=KEY_2)
    new = login(stubs, alice.username).access_token
    assert jwt.get_unverified_header(new)["kid"] == "k2"
    assert profile_of(stubs, old).user_id == profile_of(stubs, new).user_id == alice.user_id

    write_keys(keys_file, "k2", k2=KEY_2)
    retired = rpc_error(lambda: profile_of(stubs, old))
    assert retired.code() == Code.UNAUTHENTICATED
    assert "key not accepted" in retired.details()
    assert profile_of(stubs, new).user_id == alice.user_id


def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("header", "key", "algorithm"),
    [
        ({"kid": "k9"}, KEY_1, "HS256"),
        ({}, KEY_1, "HS256"),
        ({"kid": "k1"}, None, "none"),
        ({"kid": "k1"}, KEY_1 + "x" * 8, "HS384"),
        ({"kid": "k1"}, "rsa", "RS256"),
    ],
    ids=["unknown kid", "missing kid", "alg none", "HS384", "RS256"],
)
def test_a_token_with_another_algorithm_or_an_unknown_or_missing_key_id_is_unauthenticated(
    stubs, alice, header, key, algorithm
):
    claims = jwt.decode(alice.login.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, rsa_key() if key == "rsa" else key, algorithm=algorithm, headers=header)
    error = rpc_error(lambda: profile_of(stubs, forged))
    assert error.code() == Code.UNAUTHENTICATED
    assert "log in again" in error.details()


def test_a_reused_refresh_token_ends_the_session_with_its_newest_tokens(stubs, alice):
    first = refresh(stubs, alice.login.refresh_token)
    newest = refresh(stubs, first.refresh_token)
    assert profile_of(stubs, newest.access_token).user_id == alice.user_id

    reused = rpc_error(lambda: refresh(stubs, alice.login.refresh_token))
    assert reused.code() == Code.UNAUTHENTICATED
    assert rpc_error(lambda: profile_of(stubs, newest.access_token)).code() == Code.UNAUTHENTICATED
    assert rpc_error(lambda: refresh(stubs, newest.refresh_token)).code() == Code.UNAUTHENTICATED
    # Other sessions of the user go on.
    assert login(stubs, alice.username).user_id == alice.user_id


def test_logout_revokes_the_access_and_the_refresh_token(stubs, alice):
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
    assert rpc_error(lambda: profile_of(stubs, alice.login.access_token)).code() == Code.UNAUTHENTICATED
    assert rpc_error(lambda: refresh(stubs, alice.login.refresh_token)).code() == Code.UNAUTHENTICATED


# --- passwords ---------------------------------------------------------------------------------


def register(stubs, username: str, password: str):
    return stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=password))


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("Password1", "one of the 10,000 most common passwords"),
        ("QWERTYUIOP", "one of the 10,000 most common passwords"),
        ("seven77", "at least 8 characters long (passwords are 8 to 128 characters)"),
        ("x" * 129, "at most 128 characters long (passwords are 8 to 128 characters)"),
    ],
)
def test_a_common_short_or_long_password_is_refused_saying_why_and_stores_nothing(
    stubs, new_username, password, complaint
):
    name = new_username("pw")
    error = rpc_error(lambda: register(stubs, name, password))
    assert error.code() == Code.INVALID_ARGUMENT
    assert complaint in error.details()
    assert register(stubs, name, PASSWORD).profile.username == name


def test_passwords_differing_only_after_the_72nd_byte_are_different_passwords(stubs, new_username):
    name = new_username("long")
    register(stubs, name, "y" * 72 + "the real ending")
    assert rpc_error(lambda: login(stubs, name, "y" * 72 + "another ending")).code() == Code.UNAUTHENTICATED
    assert login(stubs, name, "y" * 72 + "the real ending").access_token


# --- brute force -----------------------------------------------------------------------------------


_own_minutes = itertools.count(1)


@pytest.fixture
def own_minute(clock):
    """This test's clock moved to a minute no other test uses, before it logs in.

    Failed logins count against the client address in the account database; in the production profile a
    run's tests share that database, and they all call from 127.0.0.1. A failure counts only within its
    minute (and not yet if stamped more than a few seconds ahead), so in a minute of its own a test
    neither sees the other tests' failures nor makes them wait.
    """
    clock.advance(timedelta(days=3, minutes=7 * next(_own_minutes)))
    return clock


def forwarded_for(address: str):
    return [("x-forwarded-for", address)]


def fail_logins(stubs, times: int, metadata=()) -> None:
    for _ in range(times):
        wrong = rpc_error(
            lambda: stubs.accounts.Login(
                account_pb2.LoginRequest(username="nobody-here", password="a wrong guess"), metadata=metadata
            )
        )
        assert wrong.code() == Code.UNAUTHENTICATED


def login_via(stubs, username: str, metadata=()):
    return stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=PASSWORD), metadata=metadata)


def assert_address_limited(error) -> None:
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert "too many failed logins from your address; try again in" in error.details()


@pytest.fixture
def lenient_address_server(server_config, own_minute):
    """A server whose per-address limit stays out of the way of per-account tests from one loopback address."""
    running = RunningServer(dataclasses.replace(server_config, max_login_failures_per_address=10_000), own_minute)
    stubs = Stubs.connect(running.address)
    yield stubs
    stubs.channel.close()
    running.stop()


def test_100_failed_logins_pause_a_username_alike_for_real_and_unknown_users_until_the_hour_passes(
    lenient_address_server, new_username, clock
):
    stubs = lenient_address_server
    real = register_and_login(stubs, new_username("owner"))
    ghost = new_username("ghost")
    for name in (real.username, ghost):
        for _ in range(100):
            assert rpc_error(lambda name=name: login(stubs, name, "a wrong guess")).code() == Code.UNAUTHENTICATED
    paused = rpc_error(lambda: login(stubs, real.username))
    unknown = rpc_error(lambda: login(stubs, ghost))
    assert paused.code() == unknown.code() == Code.RESOURCE_EXHAUSTED
    assert paused.details() == unknown.details()
    assert "too many failed login attempts" in paused.details() and "try again in" in paused.details()
    # The session opened before the attack goes on; the owner logs in again once the hour is over.
    assert profile_of(stubs, real.login.access_token).user_id == real.user_id
    clock.advance(timedelta(hours=1, seconds=1))
    assert login(stubs, real.username).user_id == real.user_id


def test_20_failed_logins_from_one_address_in_a_minute_make_it_wait_a_minute(stubs, alice, new_username, own_minute):
    clock = own_minute
    for n in range(20):
        name = new_username(f"guess{n}-")
        assert rpc_error(lambda name=name: login(stubs, name, "a wrong guess")).code() == Code.UNAUTHENTICATED
    limited = rpc_error(lambda: login(stubs, alice.username))
    assert limited.code() == Code.RESOURCE_EXHAUSTED
    assert "too many failed logins from your address; try again in" in limited.details()
    clock.advance(timedelta(minutes=1))
    assert login(stubs, alice.username).user_id == alice.user_id


@pytest.fixture
def second_server(server_config, own_minute):
    """Another server process on the same account database, as behind a load balancer."""
    running = RunningServer(server_config, own_minute)
    stubs = Stubs.connect(running.address)
    yield stubs
    stubs.channel.close()
    running.stop()


# Servers share an account database only in the production profile: one SQLite file is one server's.
@pytest.mark.parametrize("profile", ["production"])
def test_failed_logins_spread_over_two_servers_sharing_the_account_database_limit_the_address_on_both(
    stubs, second_server, alice, own_minute
):
    fail_logins(stubs, 10)
    fail_logins(second_server, 10)
    for either in (stubs, second_server):
        assert_address_limited(rpc_error(lambda either=either: login_via(either, alice.username)))
    own_minute.advance(timedelta(minutes=1))
    assert login_via(stubs, alice.username).user_id == login_via(second_server, alice.username).user_id


@pytest.fixture
def behind_a_proxy(server_config, own_minute):
    """A server that trusts its loopback peer as a proxy: calls through it may say whom they forward."""
    running = RunningServer(dataclasses.replace(server_config, trusted_proxies="127.0.0.0/8,::1"), own_minute)
    stubs = Stubs.connect(running.address)
    yield stubs
    stubs.channel.close()
    running.stop()


def test_a_trusted_proxys_forwarded_address_is_limited_apart_from_the_proxys_other_clients(behind_a_proxy):
    stubs = behind_a_proxy
    owner = register_and_login(stubs, f"owner-{secrets.token_hex(4)}")
    fail_logins(stubs, 20, forwarded_for("198.51.100.7"))
    assert_address_limited(rpc_error(lambda: login_via(stubs, owner.username, forwarded_for("198.51.100.7"))))
    # The proxy adds its entry after whatever the client sent: the client cannot choose a fresh one.
    spoofed = [("x-forwarded-for", "203.0.113.50"), *forwarded_for("198.51.100.7")]
    assert_address_limited(rpc_error(lambda: login_via(stubs, owner.username, spoofed)))
    for elsewhere in (forwarded_for("198.51.100.8"), forwarded_for("203.0.113.1, 198.51.100.9"), ()):
        assert login_via(stubs, owner.username, elsewhere).user_id == owner.user_id


def test_an_untrusted_peers_x_forwarded_for_is_ignored(stubs, alice, own_minute):
    for n in range(20):
        fail_logins(stubs, 1, forwarded_for(f"198.51.100.{n}"))
    assert_address_limited(rpc_error(lambda: login_via(stubs, alice.username, forwarded_for("198.51.100.99"))))


# --- password expiry ------------------------------------------------------------------------------


def test_a_login_ten_days_before_the_expiry_warns_about_it(stubs, alice, clock):
    clock.advance(timedelta(days=80))
    response = login(stubs, alice.username)
    assert response.password_expires_in_days == 10
    (warning,) = response.warnings
    assert warning.startswith("your password expires in 10 days") and "ChangePassword" in warning


def test_a_login_well_before_the_expiry_has_no_warning(alice):
    assert not alice.login.HasField("password_expires_in_days")
    assert list(alice.login.warnings) == []


@pytest.fixture
def expiry_notifier(profile, server, server_config, clock):
    """The password-expiry notifier the profile's evaluator runs on each tick, on its real stores and queue."""
    if profile == "embedded":
        from fittrack.core.adapters.sqlite import SqliteDatabase
        from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
        from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
        from fittrack.core.adapters.sqlite_outbox import SqliteNotificationQueue

        db = SqliteDatabase(server_config.database_path)
        schedule = evaluation_schedule(
            server_config,
            lambda: SqliteUnitOfWork(db, read_only=True),
            SqliteMetricStore(db),
            SqliteNotificationQueue(db),
            clock,
        )
        yield schedule.also[0]
        db.close()
        return
    parts = build_evaluator(server_config, clock)
    yield parts.schedule.also[0]
    for close in reversed(parts.closers):
        close()


def notice_moment(expires_at: datetime, days_ahead: int, zone: ZoneInfo) -> datetime:
    """09:00 local on the local day `days_ahead` days before the password's local expiry day."""
    day = expires_at.astimezone(zone).date() - timedelta(days=days_ahead)
    return datetime.combine(day, time(9), zone).astimezone(UTC)


def expiry_notices(stubs, username: str):
    fresh = login(stubs, username)  # the clock moved: earlier access tokens have expired
    page = stubs.notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(), metadata=bearer(fresh.access_token)
    )
    return [n.title for n in page.notifications if n.kind == notification_pb2.NOTIFICATION_KIND_PASSWORD_EXPIRING]


def test_users_are_notified_14_and_3_local_days_before_their_password_expires(
    stubs, expiry_notifier, clock, new_username
):
    user = register_and_login(stubs, new_username("expiring"), time_zone=MARQUESAS)
    expires = user.login.password_expires_at.ToDatetime(tzinfo=UTC)
    zone = ZoneInfo(MARQUESAS)
    for days_ahead, expected in ((14, ["Your password expires in 14 days"]), (3, None)):
        moment = notice_moment(expires, days_ahead, zone)
        clock.advance(moment - clock() + timedelta(seconds=1))
        assert expiry_notifier.run_due(moment - timedelta(minutes=1), moment) >= 1
        # Running the same window again (a restart's catch-up) notifies nobody twice.
        expiry_notifier.run_due(moment - timedelta(minutes=1), moment)
        titles = expected or ["Your password expires in 3 days", "Your password expires in 14 days"]
        eventually(lambda: expiry_notices(stubs, user.username), lambda found, want=titles: found == want)
