"""Account security on the fakes: password rules, brute-force limits, expiry warnings, token keys, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jwt
import pytest

from fittrack.app.config import Config, ConfigError
from fittrack.core.adapters.common_passwords import CommonPasswordList
from fittrack.core.adapters.passwords import BcryptHasher
from fittrack.core.adapters.tokens import JwtSigner, Keyring, KeysFile
from fittrack.core.domain.accounts import ProfileChanges
from fittrack.core.domain.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from fittrack.core.domain.notifications import NotificationKind, NotificationPreferences
from fittrack.core.domain.throttle import (
    AddressPolicy,
    LoginFailures,
    ThrottlePolicy,
    after_failure,
    refuse_if_address_limited,
)
from fittrack.core.services.expiry import PasswordExpiryNotifier
from fittrack.core.services.housekeeping import Housekeeping
from fittrack.server.ratelimit import client_address
from tests.unit.fakes import PASSWORD, FakeApp, fake_app

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
SECRET_A = b"a" * 32
SECRET_B = b"b" * 32


@pytest.fixture
def app() -> FakeApp:
    return fake_app(T0)


def register(app: FakeApp, username: str = "alice", password: str = PASSWORD, time_zone: str = "UTC"):
    return app.accounts.register(username, password, ProfileChanges(time_zone=time_zone))


def fail_logins(app: FakeApp, username: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Unauthenticated):
            app.accounts.login(username, "not the password")


# --- passwords -----------------------------------------------------------------


@pytest.mark.parametrize("password", ["password1", "PassWord1", "ILOVEYOU", "Sunshine"])
def test_a_common_password_is_refused_whatever_its_letter_case_and_nothing_is_stored(app, password):
    with pytest.raises(InvalidArgument, match="10,000 most common passwords"):
        register(app, password=password)
    assert app.database.state.users == {}


def test_a_common_password_cannot_become_the_new_password(app):
    register(app)
    principal = app.accounts.authenticate(app.accounts.login("alice", PASSWORD).access_token)
    with pytest.raises(InvalidArgument, match="most common"):
        app.accounts.change_password(principal, "", PASSWORD, "baseball")
    assert app.accounts.login("alice", PASSWORD).access_token


def test_too_long_a_password_is_refused_with_both_limits_in_the_message(app):
    with pytest.raises(InvalidArgument, match="at most 128 characters long .passwords are 8 to 128 characters"):
        register(app, password="x" * 129)


def test_the_shipped_list_holds_ten_thousand_passwords_compared_ignoring_case():
    common = CommonPasswordList()
    assert len(common) == 10_000
    assert "password" in common and "PASSWORD" in common and "Qwerty" in common
    assert PASSWORD not in common
    assert "a brand new secret" not in common


def test_passwords_that_differ_only_after_byte_72_are_different_for_bcrypt():
    hasher = BcryptHasher(rounds=4)
    stored = hasher.hash("x" * 72 + "first ending")
    assert hasher.verify("x" * 72 + "first ending", stored)
    assert not hasher.verify("x" * 72 + "other ending", stored)
    # 128 characters of four UTF-8 bytes each: 512 bytes, still all of them count.
    emoji = "\N{RUNNER}" * 127
    stored = hasher.hash(emoji + "a")
    assert hasher.verify(emoji + "a", stored) and not hasher.verify(emoji + "b", stored)


# --- brute force -----------------------------------------------------------------


def test_after_100_failed_logins_in_an_hour_the_username_is_paused_even_with_the_right_password(app):
    register(app)
    fail_logins(app, "alice", 100)
    with pytest.raises(ResourceExhausted, match=r"too many failed login attempts .* try again in 60 minutes"):
        app.accounts.login("alice", PASSWORD)


def test_99_failed_logins_leave_the_owner_in(app):
    register(app)
    fail_logins(app, "alice", 99)
    assert app.accounts.login("alice", PASSWORD).access_token


def test_the_owner_can_log_in_once_the_pause_has_passed_and_that_forgets_the_failures(app):
    register(app)
    fail_logins(app, "alice", 100)
    app.clock.advance(timedelta(hours=1))
    assert app.accounts.login("alice", PASSWORD).access_token
    assert app.database.state.login_failures == {}


def test_an_unknown_username_is_paused_the_same_way_with_the_same_answers(app):
    register(app)
    answers = {}
    for name in ("alice", "nobody"):
        with pytest.raises(Unauthenticated) as first:
            app.accounts.login(name, "not the password")
        fail_logins(app, name, 99)
        with pytest.raises(ResourceExhausted) as paused:
            app.accounts.login(name, "not the password")
        answers[name] = (str(first.value), str(paused.value))
    assert answers["alice"] == answers["nobody"]


def test_failures_older_than_an_hour_start_a_new_window(app):
    register(app)
    fail_logins(app, "alice", 60)
    app.clock.advance(timedelta(hours=1))
    fail_logins(app, "alice", 60)
    assert app.accounts.login("alice", PASSWORD).access_token


def test_changing_the_password_by_username_counts_and_is_paused_like_a_login(app):
    register(app)
    for _ in range(100):
        with pytest.raises(Unauthenticated, match="unknown username or wrong password"):
            app.accounts.change_password(None, "alice", "not the password", "a brand new secret")
    with pytest.raises(ResourceExhausted):
        app.accounts.change_password(None, "alice", PASSWORD, "a brand new secret")


def test_pauses_in_a_row_grow_but_never_beyond_the_cap():
    policy = ThrottlePolicy(max_failures=3, window=timedelta(hours=1), max_pause=timedelta(hours=4))
    now, record, pauses = T0, None, []
    for _ in range(8):
        for _ in range(3):
            record = after_failure(record, "alice", now, policy)
        pauses.append(record.paused_until - now)
        now = record.paused_until
    assert pauses == sorted(pauses)
    assert pauses[0] == timedelta(hours=1) and pauses[-1] == timedelta(hours=4)


def test_a_day_without_failures_forgets_the_earlier_pauses():
    policy = ThrottlePolicy(max_failures=1)
    record = after_failure(LoginFailures("alice", T0, pauses=5, last_failure=T0), "alice", T0, policy)
    assert record.pauses == 6
    later = T0 + timedelta(days=2)
    assert after_failure(record, "alice", later, policy).pauses == 1


def failures_at(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=each) for each in seconds]


def test_an_address_below_its_limit_within_the_window_may_try_again():
    policy = AddressPolicy(max_failures=3)
    refuse_if_address_limited(failures_at(0, 10), T0 + timedelta(seconds=20), policy)
    # Three, but the first has left the sliding window.
    refuse_if_address_limited(failures_at(0, 10, 20), T0 + timedelta(seconds=60), policy)


def test_an_address_at_its_limit_waits_until_the_oldest_counted_failure_leaves_the_window():
    policy = AddressPolicy(max_failures=3)
    with pytest.raises(ResourceExhausted, match="from your address; try again in 40 seconds$"):
        refuse_if_address_limited(failures_at(20, 0, 10), T0 + timedelta(seconds=20), policy)
    # Beyond the limit only the newest max_failures decide the wait.
    with pytest.raises(ResourceExhausted, match="try again in 17 seconds$"):
        refuse_if_address_limited(failures_at(1, 2, 30, 40), T0 + timedelta(seconds=45), policy)
    with pytest.raises(ResourceExhausted, match="try again in 1 second$"):
        refuse_if_address_limited(failures_at(0.5, 1, 2), T0 + timedelta(seconds=60), policy)


def test_failures_stamped_further_ahead_than_the_clock_skew_do_not_count_yet():
    policy = AddressPolicy(max_failures=2)
    refuse_if_address_limited(failures_at(0, 30), T0, policy)
    with pytest.raises(ResourceExhausted):
        refuse_if_address_limited(failures_at(0, 3), T0, policy)


def test_failed_logins_from_one_address_over_any_names_make_it_wait_and_other_addresses_go_on(app):
    register(app)
    for n in range(20):
        with pytest.raises(Unauthenticated):
            app.accounts.login(f"guess{n}" if n % 2 else "no such name!", "a wrong guess", "192.0.2.1")
    with pytest.raises(ResourceExhausted, match="from your address; try again in 60 seconds"):
        app.accounts.login("alice", PASSWORD, "192.0.2.1")
    assert app.accounts.login("alice", PASSWORD, "192.0.2.2").user_id
    app.clock.advance(timedelta(minutes=1))
    assert app.accounts.login("alice", PASSWORD, "192.0.2.1").user_id


def test_wrong_current_passwords_count_against_the_address_with_or_without_a_token(app):
    register(app)
    principal = app.accounts.authenticate(app.accounts.login("alice", PASSWORD).access_token)
    for n in range(20):
        with pytest.raises(Unauthenticated):
            app.accounts.change_password(principal if n % 2 else None, "alice", "wrong!", "a new long secret", "h")
    with pytest.raises(ResourceExhausted, match="from your address"):
        app.accounts.change_password(principal, "", PASSWORD, "a new long secret", "h")


def test_recording_a_failure_drops_the_addresss_expired_ones_and_housekeeping_everyones_each_minute(app):
    for address in ("192.0.2.1", "192.0.2.2"):
        with pytest.raises(Unauthenticated):
            app.accounts.login("nobody", "a wrong guess", address)
    app.clock.advance(timedelta(minutes=1, seconds=1))
    with pytest.raises(Unauthenticated):
        app.accounts.login("nobody", "a wrong guess", "192.0.2.1")
    assert [who for who, _ in app.database.state.address_failures] == ["192.0.2.2", "192.0.2.1"]
    housekeeping = Housekeeping(app.database, ThrottlePolicy(), AddressPolicy())
    now = app.clock()
    assert housekeeping.run_due(now - timedelta(minutes=1), now) == 1
    assert [who for who, _ in app.database.state.address_failures] == ["192.0.2.1"]


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:203.0.113.9:51234", "203.0.113.9"),
        ("ipv6:[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
        ("ipv6:[::1]:5000", "::/64"),
        ("unix:/tmp/socket", "unix"),
        ("", "unknown"),
    ],
)
def test_the_client_address_comes_from_the_peer_with_ipv6_grouped_by_64(peer, address):
    assert client_address(peer) == address


PROXIES = Config(trusted_proxies="10.0.0.5, 2001:db8:ff::/48").trusted_proxy_networks()


@pytest.mark.parametrize(
    ("peer", "forwarded", "address"),
    [
        # From a trusted proxy: the last entry, the one the proxy added after what the client sent.
        ("ipv4:10.0.0.5:4000", ["198.51.100.7"], "198.51.100.7"),
        ("ipv4:10.0.0.5:4000", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
        ("ipv4:10.0.0.5:4000", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),
        ("ipv6:[2001:db8:ff:1::9]:4000", ["2001:db8:5:6:7::1"], "2001:db8:5:6::/64"),
        ("ipv6:[::ffff:10.0.0.5]:4000", ["::ffff:198.51.100.7"], "198.51.100.7"),
        # A trusted proxy without the header, or with a malformed one: the proxy itself.
        ("ipv4:10.0.0.5:4000", [], "10.0.0.5"),
        ("ipv4:10.0.0.5:4000", ["unknown"], "10.0.0.5"),
        # Anyone else: the header is ignored.
        ("ipv4:10.0.0.6:4000", ["198.51.100.7"], "10.0.0.6"),
        ("ipv6:[2001:db8:fe::1]:4000", ["198.51.100.7"], "2001:db8:fe::/64"),
    ],
)
def test_a_trusted_proxys_forwarded_address_is_the_client_and_anyone_elses_header_is_ignored(peer, forwarded, address):
    metadata = [("x-forwarded-for", value) for value in forwarded]
    assert client_address(peer, [("user-agent", "grpc"), *metadata], PROXIES) == address


def test_forwarded_addresses_are_ignored_when_no_proxy_is_trusted():
    assert client_address("ipv4:10.0.0.5:4000", [("x-forwarded-for", "198.51.100.7")]) == "10.0.0.5"


@pytest.mark.parametrize("proxies", ["10.0.0.5,proxy.internal", "10.0.0.1/24", "10.0.0.0/33"])
def test_trusted_proxies_that_are_not_addresses_or_cidrs_are_refused_naming_the_entry(proxies):
    with pytest.raises(ConfigError, match="FITTRACK_TRUSTED_PROXIES must be comma-separated IP addresses or CIDRs"):
        Config.from_env({"FITTRACK_TRUSTED_PROXIES": proxies})


# --- password expiry ---------------------------------------------------------------


def test_a_login_within_14_days_of_the_expiry_carries_a_warning(app):
    register(app)
    app.clock.advance(timedelta(days=76))
    session = app.accounts.login("alice", PASSWORD)
    assert session.password_expires_in_days == 14
    assert session.warnings == (
        f"your password expires in 14 days ({session.password_expires_at:%Y-%m-%d %H:%M} UTC); "
        "set a new one with ChangePassword",
    )


def test_a_login_15_days_before_the_expiry_has_no_warning(app):
    register(app)
    app.clock.advance(timedelta(days=75))
    session = app.accounts.login("alice", PASSWORD)
    assert session.password_expires_in_days is None and session.warnings == ()


def notifier(app: FakeApp) -> PasswordExpiryNotifier:
    return PasswordExpiryNotifier(app.database, app.queue, app.clock)


def expiring_notices(app: FakeApp, user_id: str):
    return [n for n in app.database.notifications_of(user_id) if n.kind is NotificationKind.PASSWORD_EXPIRING]


def test_the_daily_run_notifies_14_and_3_local_days_before_the_expiry_once_each(app):
    user = register(app, time_zone="Asia/Tokyo").user
    expiry = app.clock() + timedelta(days=90)
    tokyo = ZoneInfo("Asia/Tokyo")
    run = notifier(app)
    # Tokyo's 09:00 on the local day 14 days before the expiry's local day.
    notice = datetime.combine(expiry.astimezone(tokyo).date() - timedelta(days=14), time(9), tokyo).astimezone(UTC)
    assert run.run_due(notice - timedelta(days=1), notice - timedelta(minutes=1)) == 0
    assert run.run_due(notice - timedelta(minutes=1), notice) == 1
    assert run.run_due(notice - timedelta(minutes=1), notice) == 1  # a re-run sends the same key again...
    (first,) = expiring_notices(app, user.user_id)  # ...which the dispatcher drops
    assert first.title == "Your password expires in 14 days"
    assert f"{expiry:%Y-%m-%d}" in first.body
    three_days = notice + timedelta(days=11)
    assert run.run_due(three_days - timedelta(minutes=1), three_days) == 1
    assert [n.title for n in expiring_notices(app, user.user_id)][-1] == "Your password expires in 3 days"


def test_no_expiry_notice_goes_to_a_user_who_turned_notifications_off(app):
    user = register(app).user
    with app.database() as uow:
        uow.preferences.put(NotificationPreferences(user.user_id, enabled=False))
        uow.commit()
    expiry = app.clock() + timedelta(days=90)
    notice = datetime.combine((expiry - timedelta(days=14)).date(), time(9), UTC)
    assert notifier(app).run_due(notice - timedelta(minutes=1), notice) == 0


# --- token keys -------------------------------------------------------------------------


def write_keys(path, current: str, **keys: bytes) -> None:
    path.write_text(json.dumps({"current": current, "keys": {k: v.decode() for k, v in keys.items()}}))


def test_rotating_the_keys_file_signs_with_the_new_key_and_verifies_the_old_until_it_is_removed(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, "k1", k1=SECRET_A)
    ticks = [0.0]
    signer = JwtSigner(KeysFile(path, recheck_seconds=5, monotonic=lambda: ticks[0]), timedelta(minutes=15))
    old, _ = signer.issue("u1", "s1", T0)
    assert jwt.get_unverified_header(old)["kid"] == "k1"

    write_keys(path, "k2", k1=SECRET_A, k2=SECRET_B)
    assert jwt.get_unverified_header(signer.issue("u1", "s1", T0)[0])["kid"] == "k1"  # not re-read yet
    ticks[0] = 5.0
    new, _ = signer.issue("u1", "s1", T0)
    assert jwt.get_unverified_header(new)["kid"] == "k2"
    assert signer.verify(old, T0).user_id == signer.verify(new, T0).user_id == "u1"

    write_keys(path, "k2", k2=SECRET_B)
    ticks[0] = 10.0
    with pytest.raises(Unauthenticated, match="key not accepted"):
        signer.verify(old, T0)
    assert signer.verify(new, T0).user_id == "u1"


def test_a_malformed_keys_file_keeps_the_previous_keys(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, "k1", k1=SECRET_A)
    ticks = [0.0]
    keys = KeysFile(path, recheck_seconds=0, monotonic=lambda: ticks[0])
    path.write_text('{"current": "k9", "keys": {')
    ticks[0] = 1.0
    assert keys.keyring().current == "k1"


def test_a_single_secret_signs_with_the_default_key_id():
    token, _ = JwtSigner(SECRET_A, timedelta(minutes=15)).issue("u1", "s1", T0)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "default", "typ": "JWT"}


def forged(header: dict, key, algorithm: str) -> str:
    claims = {"iss": "fittrack", "aud": "fittrack-api", "sub": "u1", "sid": "s1", "typ": "access"}
    claims |= {"iat": int(T0.timestamp()), "exp": int(T0.timestamp()) + 600}
    return jwt.encode(claims, key, algorithm=algorithm, headers=header)


def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda: forged({"kid": "k1"}, SECRET_A, "HS256"), None),
        (lambda: forged({"kid": "k9"}, SECRET_A, "HS256"), "key not accepted"),
        (lambda: forged({}, SECRET_A, "HS256"), "names no signing key"),
        (lambda: forged({"kid": "k1"}, None, "none"), "must be signed with HS256"),
        (lambda: forged({"kid": "k1"}, SECRET_A * 2, "HS384"), "must be signed with HS256"),
        (lambda: forged({"kid": "k1"}, rsa_key(), "RS256"), "must be signed with HS256"),
        (lambda: forged({"kid": "k1"}, b"c" * 32, "HS256"), "signature is wrong"),
    ],
)
def test_only_hs256_tokens_naming_a_known_key_id_are_accepted(make, complaint):
    signer = JwtSigner(Keyring("k1", {"k1": SECRET_A}), timedelta(minutes=15))
    if complaint is None:
        assert signer.verify(make(), T0).user_id == "u1"
        return
    with pytest.raises(Unauthenticated, match=complaint):
        signer.verify(make(), T0)


def test_a_keyring_never_shows_its_secrets():
    assert "aaaa" not in repr(Keyring("k1", {"k1": SECRET_A}))


# --- settings ---------------------------------------------------------------------------------


PRODUCTION = {
    "FITTRACK_PROFILE": "production",
    "FITTRACK_PG_DSN": "postgresql://fittrack@127.0.0.1/fittrack",
    "FITTRACK_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "FITTRACK_MONGO_URI": "mongodb://127.0.0.1",
}


def test_the_production_profile_refuses_fewer_than_12_bcrypt_rounds_unless_a_test_stack_says_so():
    with pytest.raises(ConfigError, match="at least 12 in the production profile"):
        Config.from_env({**PRODUCTION, "FITTRACK_BCRYPT_ROUNDS": "11"})
    allowed = {**PRODUCTION, "FITTRACK_BCRYPT_ROUNDS": "4", "FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS": "1"}
    assert Config.from_env(allowed).bcrypt_rounds == 4
    assert Config.from_env({"FITTRACK_BCRYPT_ROUNDS": "4"}).bcrypt_rounds == 4  # embedded: the owner's choice


def test_access_tokens_may_live_at_most_15_minutes():
    assert Config.from_env({"FITTRACK_ACCESS_TOKEN_TTL_SECONDS": "900"}).access_token_ttl_seconds == 900
    with pytest.raises(ConfigError, match="1 to 900"):
        Config.from_env({"FITTRACK_ACCESS_TOKEN_TTL_SECONDS": "901"})


def test_a_keys_file_is_checked_at_start_and_its_errors_never_quote_a_secret(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"current": "k2", "keys": {"k1": "short-secret-value"}}))
    with pytest.raises(ConfigError, match="not among the keys") as refused:
        Config.from_env({"FITTRACK_TOKEN_KEYS_FILE": str(path)})
    assert "short-secret-value" not in str(refused.value)
    path.write_text(json.dumps({"current": "k1", "keys": {"k1": "short-secret-value"}}))
    with pytest.raises(ConfigError, match="at least 32 bytes") as refused:
        Config.from_env({"FITTRACK_TOKEN_KEYS_FILE": str(path)})
    assert "short-secret-value" not in str(refused.value)
    with pytest.raises(ConfigError, match="not both"):
        Config.from_env({"FITTRACK_TOKEN_KEYS_FILE": str(path), "FITTRACK_TOKEN_SECRET": "x" * 32})
