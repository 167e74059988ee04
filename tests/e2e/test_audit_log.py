"""A real server process's log, line by line: JSON lines with the agreed keys and the caller's request id, an
audit line for each security event with the client's address, never a secret; and no APScheduler chatter."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from fittrack.generated.v1 import account_pb2
from tests.e2e.test_evaluation import steps_goal
from tests.e2e.test_startup import ROOT, environment, free_port, serving
from tests.support import Stubs, User, eventually, rpc_error

JSON_KEYS = {"time", "level", "logger", "message", "trace_id", "span_id", "request_id"}
PROXY_SETTINGS = {
    # The test is the proxy: the client address is the x-forwarded-for it sends, so each case has its own.
    "FITTRACK_TRUSTED_PROXIES": "127.0.0.1",
    "FITTRACK_MAX_LOGIN_FAILURES_PER_ACCOUNT": "2",
    "FITTRACK_MAX_LOGIN_FAILURES_PER_ADDRESS": "3",
    "FITTRACK_BCRYPT_ROUNDS": "4",
    "FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS": "1",
}


@contextlib.contextmanager
def server_process(tmp_path: Path, **settings: str) -> Iterator[tuple[Stubs, Path]]:
    """A real `fittrack.app.server` with these settings, its stderr in a file; stopped with SIGTERM after."""
    address = f"127.0.0.1:{free_port()}"
    env = environment(tmp_path, FITTRACK_LISTEN=address, **PROXY_SETTINGS, **settings)
    log = tmp_path / f"server-{secrets.token_hex(3)}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "fittrack.app.server"], cwd=ROOT, env=env, stdout=stderr, stderr=stderr
        )
    stubs = None
    try:
        eventually(lambda: serving(address), bool, timeout=30)
        stubs = Stubs.connect(address)
        yield stubs, log
    finally:
        if stubs is not None:
            stubs.channel.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()


def call(address: str, request_id: str, token: str | None = None) -> list[tuple[str, str]]:
    metadata = [("x-forwarded-for", address), ("x-request-id", request_id)]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    return metadata


def returned_request_id(metadata) -> str | None:
    return dict(metadata or ()).get("x-request-id")


class Known:
    """What must never be logged."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: str) -> str:
        self.values[label] = value
        return value

    def session(self, label: str, response) -> None:
        self.add(f"{label} access token", response.access_token)
        self.add(f"{label} refresh token", response.refresh_token)
        _, claims, signature = response.access_token.split(".")
        self.add(f"{label} access token claims", claims)
        self.add(f"{label} access token signature", signature)

    def found_in(self, text: str) -> list[str]:
        return [label for label, value in self.values.items() if value in text]


def audit_of(lines: list[dict]) -> list[tuple]:
    return [
        (line["event"], line.get("method"), line.get("outcome"), line.get("user_id"), line.get("address"))
        for line in lines
        if line["logger"] == "fittrack.audit"
    ]


def test_json_lines_carry_request_ids_and_each_security_event_is_one_audit_line_without_a_secret(tmp_path):
    known = Known()
    token_secret = known.add("token secret", "tok-" + secrets.token_urlsafe(32))
    bob_password = known.add("bob's password", "Orchid-" + secrets.token_urlsafe(9))
    bob_new = known.add("bob's new password", "Lantern-" + secrets.token_urlsafe(9))
    alice_password = known.add("alice's password", "Juniper-" + secrets.token_urlsafe(9))
    wrong = known.add("a wrong password", "Zebra-" + secrets.token_urlsafe(9))
    settings = {"FITTRACK_LOG_FORMAT": "json", "FITTRACK_LOG_LEVEL": "DEBUG", "FITTRACK_TOKEN_SECRET": token_secret}
    with server_process(tmp_path, **settings) as (stubs, log):
        accounts = stubs.accounts
        bob_id = accounts.Register(
            account_pb2.RegisterRequest(username="bob", password=bob_password), metadata=call("198.51.100.1", "reg-1")
        ).profile.user_id
        first, login_call = accounts.Login.with_call(
            account_pb2.LoginRequest(username="bob", password=bob_password),
            metadata=call("198.51.100.1", "login-bob-1"),
        )
        known.session("first", first)
        assert returned_request_id(login_call.initial_metadata()) == "login-bob-1"
        refreshed = accounts.RefreshToken(
            account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token), metadata=call("198.51.100.1", "ref-1")
        )
        known.session("refreshed", refreshed)
        reused = rpc_error(
            lambda: accounts.RefreshToken(
                account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token),
                metadata=call("198.51.100.9", "ref-2"),
            )
        )
        assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
        # A call that fails before any header went out tells its id in the trailers.
        assert returned_request_id(reused.trailing_metadata()) == "ref-2"

        second = accounts.Login(
            account_pb2.LoginRequest(username="bob", password=bob_password), metadata=call("198.51.100.2", "login-2")
        )
        known.session("second", second)
        accounts.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password=bob_password, new_password=bob_new),
            metadata=call("198.51.100.2", "change-1", second.access_token),
        )
        third = accounts.Login(
            account_pb2.LoginRequest(username="bob", password=bob_new), metadata=call("198.51.100.3", "login-3")
        )
        known.session("third", third)
        accounts.DeleteAccount(
            account_pb2.DeleteAccountRequest(password=bob_new),
            metadata=call("198.51.100.3", "delete-1", third.access_token),
        )

        alice_id = accounts.Register(
            account_pb2.RegisterRequest(username="alice", password=alice_password), metadata=call("203.0.113.7", "r2")
        ).profile.user_id
        for attempt in range(2):  # the account's limit is 2
            error = rpc_error(
                lambda attempt=attempt: accounts.Login(
                    account_pb2.LoginRequest(username="alice", password=wrong),
                    metadata=call("203.0.113.7", f"alice-wrong-{attempt}"),
                )
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        paused = rpc_error(
            lambda: accounts.Login(
                account_pb2.LoginRequest(username="alice", password=alice_password),
                metadata=call("203.0.113.7", "alice-paused"),
            )
        )
        assert paused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        for name in ("nobody-1", "nobody-2", "nobody-3", "nobody-4"):  # the address's limit is 3
            rpc_error(
                lambda name=name: accounts.Login(
                    account_pb2.LoginRequest(username=name, password=wrong), metadata=call("192.0.2.9", name)
                )
            )
        # An id with a space could forge log lines: it is replaced, and the new one is returned.
        _, listed = accounts.ListSSOProviders.with_call(
            account_pb2.ListSSOProvidersRequest(), metadata=call("192.0.2.10", "two words")
        )
        made_up = returned_request_id(listed.initial_metadata())

    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert lines and all(set(line) >= JSON_KEYS for line in lines)
    assert all(line["time"].endswith("+00:00") for line in lines)
    assert {line["level"] for line in lines} >= {"INFO", "DEBUG"}

    assert audit_of(lines) == [
        ("login_attempted", "password", "success", bob_id, "198.51.100.1"),
        ("login_attempted", "refresh", "success", bob_id, "198.51.100.1"),
        ("refresh_token_reused", None, None, bob_id, "198.51.100.9"),
        ("login_attempted", "refresh", "failure", bob_id, "198.51.100.9"),
        ("login_attempted", "password", "success", bob_id, "198.51.100.2"),
        ("password_changed", None, None, bob_id, "198.51.100.2"),
        ("login_attempted", "password", "success", bob_id, "198.51.100.3"),
        ("account_deleted", None, None, bob_id, "198.51.100.3"),
        ("login_attempted", "password", "failure", alice_id, "203.0.113.7"),
        ("account_throttled", None, None, alice_id, "203.0.113.7"),
        ("login_attempted", "password", "failure", alice_id, "203.0.113.7"),
        ("login_attempted", "password", "throttled", None, "203.0.113.7"),
        ("login_attempted", "password", "failure", None, "192.0.2.9"),
        ("login_attempted", "password", "failure", None, "192.0.2.9"),
        ("address_throttled", None, None, None, "192.0.2.9"),
        ("login_attempted", "password", "failure", None, "192.0.2.9"),
        ("login_attempted", "password", "throttled", None, "192.0.2.9"),
    ]
    audit = [line for line in lines if line["logger"] == "fittrack.audit"]
    assert all(line["level"] == "INFO" for line in audit)
    # Each audit line carries the id of the call that caused it, as the caller sent it.
    assert [line["request_id"] for line in audit[:4]] == ["login-bob-1", "ref-1", "ref-2", "ref-2"]
    assert audit[5]["request_id"] == "change-1" and audit[7]["request_id"] == "delete-1"
    assert audit[5]["message"] == f"password_changed user_id={bob_id} address=198.51.100.2"
    assert made_up is not None and len(made_up) == 32 and made_up != "two words"
    assert "two words" not in text
    assert known.found_in(text) == []


def test_a_real_server_ticking_its_evaluator_writes_no_apscheduler_line(tmp_path):
    """APScheduler said "Running job" and "executed successfully" at INFO on every tick (twice a minute)."""
    with server_process(tmp_path) as (stubs, _):
        register = account_pb2.RegisterRequest(username="walker", password="Orchid-walks-far")
        user_id = stubs.accounts.Register(register).profile.user_id
        login = stubs.accounts.Login(account_pb2.LoginRequest(username="walker", password="Orchid-walks-far"))
        steps_goal(stubs, User(user_id, "walker", "Orchid-walks-far", login))
    # Started again with a slot at this very minute: its first tick, at start, evaluates it (catching up).
    now = datetime.now(UTC).strftime("%H:%M")
    ticking = {"FITTRACK_EVALUATION_TIMES": now, "FITTRACK_EVALUATION_TICK_SECONDS": "0.2"}
    with server_process(tmp_path, **ticking) as (_, log):
        # APScheduler spoke on every run, this first one included.
        eventually(lambda: log.read_text(), lambda text: "evaluated UTC" in text, timeout=30)
    lines = log.read_text().splitlines()
    assert any("evaluated UTC" in line and ": 1 users, 1 goals" in line for line in lines), lines
    assert [line for line in lines if "apscheduler" in line.lower()] == []


@pytest.mark.parametrize("value", ["xml", "JSONL"])
def test_an_unknown_log_format_stops_the_start_naming_the_setting(tmp_path, value):
    env = environment(tmp_path, FITTRACK_LOG_FORMAT=value, FITTRACK_LISTEN=f"127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "fittrack.app.server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"FITTRACK_LOG_FORMAT must be text or json, got {value!r}" in done.stderr
