"""No password, token or secret in any log line: a whole session with every logger at DEBUG, on both profiles.

Captured: every record of every logger in this process (the server runs in a thread here; grpc, kafka,
urllib3, pymongo included), anything written straight to file descriptors 1 and 2 (gRPC's C core), and, in
production, the stderr of the persister and dispatcher processes, which log at DEBUG too.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fittrack.app.config import Config
from fittrack.app.logs import JsonFormatter, RequestContext
from fittrack.clients.sync_call import sync_readings
from fittrack.core.adapters.audit import AUDIT_LOGGER
from fittrack.generated.v1 import account_pb2, common_pb2, goal_pb2, metric_pb2, notification_pb2
from tests.production import ROOT, ProductionStack
from tests.support import RunningServer, Stubs, batch, eventually, local_midnight, reading, rpc_error, server_settings
from tests.webhook import Webhook

STEPS = common_pb2.METRIC_KIND_STEPS
# Loggers that libraries or our own entry points may have quietened: all of them speak at DEBUG here.
LOUD = ("", "grpc", "grpc._cython", "kafka", "urllib3", "pymongo", "asyncio", "apscheduler", "fittrack", "core")
PUSH_SETTINGS = {"push_max_attempts": 4, "push_backoff_base_seconds": 0.1, "push_backoff_max_seconds": 0.2}


class Lines(logging.Handler):
    """Every record, formatted with its traceback, as one string each: in both log formats, since the JSON
    one also writes an audit line's fields as keys of their own (FITTRACK_LOG_FORMAT)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.addFilter(RequestContext())
        self.json = JsonFormatter()
        self.lines: list[str] = []
        self.json_lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
            self.json_lines.append(self.json.format(record))
        except Exception as error:  # noqa: BLE001 - a record that cannot be formatted is still evidence
            self.lines.append(f"unformattable record {record.msg!r} {record.args!r}: {error!r}")

    def audit_events(self) -> set[str]:
        return {line["event"] for line in map(json.loads, self.json_lines) if line["logger"] == AUDIT_LOGGER}


@pytest.fixture
def every_log_line() -> Iterator[Lines]:
    handler = Lines()
    levels = {name: logging.getLogger(name).level for name in LOUD}
    logging.getLogger().addHandler(handler)
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    logging.getLogger().removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.close()


class Secrets:
    """What must never be logged, collected as the session produces it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: str) -> str:
        self.values[label] = value
        return value

    def add_token(self, label: str, token: str) -> str:
        """A JWT also by its parts: a line may hold the claims or the signature without the rest."""
        self.add(label, token)
        header, claims, signature = token.split(".")
        self.add(f"{label} claims", claims)
        self.add(f"{label} signature", signature)
        return token

    def found_in(self, lines: list[str]) -> list[str]:
        return [
            f"{label} in: {line[:200]}"
            for line in lines
            for label, value in self.values.items()
            if len(value) >= 8 and value in line
        ]


@pytest.fixture
def session_setup(profile, tmp_path, request, webhook):
    """The profile's server config with a known token secret and a webhook URL carrying credentials, and
    in production the stderr files of its own persister and dispatcher, which log at DEBUG."""
    known = Secrets()
    token_secret = known.add("token secret", "tok-" + secrets.token_urlsafe(32))
    hook_password = known.add("webhook password", "hookpw-" + secrets.token_urlsafe(12))
    hook_key = known.add("webhook query key", "hookkey-" + secrets.token_urlsafe(12))
    known.add("webhook basic credential", base64.b64encode(f"hookuser:{hook_password}".encode()).decode())
    port = webhook.url.split("//", 1)[1].split("/", 1)[0]
    webhook_url = known.add("webhook url", f"http://hookuser:{hook_password}@{port}/hooks/fittrack?key={hook_key}")
    common = server_settings(tmp_path, token_secret=token_secret, webhook_url=webhook_url, **PUSH_SETTINGS)
    if profile == "embedded":
        yield Config(**common), known, []
        return
    stack = ProductionStack.create("logs")
    stderr_files = []
    try:
        env = {
            **os.environ,
            **stack.env,
            "FITTRACK_LOG_LEVEL": "DEBUG",
            # The workers write JSON lines: that format is searched for secrets too.
            "FITTRACK_LOG_FORMAT": "json",
            "FITTRACK_WEBHOOK_URL": webhook_url,
            **{f"FITTRACK_{name.upper()}": str(value) for name, value in PUSH_SETTINGS.items()},
        }
        for worker, group in (("persister", stack.persisters), ("dispatcher", stack.dispatchers)):
            path = tmp_path / f"{worker}.stderr"
            stderr_files.append(path)
            with path.open("wb") as stderr:
                group.append(
                    subprocess.Popen([sys.executable, "-m", f"fittrack.app.{worker}"], cwd=ROOT, env=env, stderr=stderr)
                )
        yield Config(**common, **stack.config_values()), known, stderr_files
    finally:
        stack.destroy()  # stops the workers first, so their stderr is complete when the test reads it


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def login(stubs: Stubs, known: Secrets, username: str, password: str, label: str) -> account_pb2.LoginResponse:
    response = stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=password))
    known.add_token(f"{label} access token", response.access_token)
    known.add(f"{label} refresh token", response.refresh_token)
    return response


def full_session(stubs: Stubs, known: Secrets, username: str, clock, webhook: Webhook) -> None:
    first_password = known.add("password", "Orchid-" + secrets.token_urlsafe(9))
    wrong_password = known.add("wrong password", "Zebra-" + secrets.token_urlsafe(9))
    new_password = known.add("new password", "Lantern-" + secrets.token_urlsafe(9))
    profile = account_pb2.ProfileFields(time_zone="Europe/Paris")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=first_password, profile=profile))

    assert (
        rpc_error(lambda: login(stubs, known, username, wrong_password, "x")).code() == grpc.StatusCode.UNAUTHENTICATED
    )
    first = login(stubs, known, username, first_password, "first")
    refreshed = stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
    known.add_token("refreshed access token", refreshed.access_token)
    known.add("refreshed refresh token", refreshed.refresh_token)
    reused = rpc_error(
        lambda: stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
    )
    assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
    # Tokens that fail: a malformed one and one with a forged signature must not be echoed either.
    forged = first.access_token.rsplit(".", 1)[0] + ".c2lnbmF0dXJlLW9mLWFuLWF0dGFja2VyLXRoYXQtaXMtbG9uZw"
    for token in (known.add("malformed token", "not-a-jwt-" + secrets.token_urlsafe(16)), forged):
        error = rpc_error(
            lambda token=token: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(token))
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    second = login(stubs, known, username, first_password, "second")
    user_id = stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=bearer(second.access_token)).user_id
    stubs.accounts.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password=first_password, new_password=new_password),
        metadata=bearer(second.access_token),
    )
    third = login(stubs, known, username, new_password, "third")
    auth = bearer(third.access_token)

    # A met goal makes a notification, which the dispatcher pushes to the webhook: refused once, then taken.
    webhook.answer(user_id, 503)
    stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=200), metadata=auth
    )
    start = local_midnight(clock, "Europe/Paris") + 600
    uploaded = batch([reading(STEPS, start, 120)], device_id="phone", sequence=1)
    stubs.metrics.UploadReadings(iter([metric_pb2.UploadReadingsRequest(batch=uploaded)]), metadata=auth, timeout=30)
    synced = sync_readings(stubs.metrics, [(STEPS, start + 60, 130)], "watch-1", auth, timeout=30)
    assert synced.batches_accepted == 1
    eventually(
        lambda: stubs.notifications.ListNotifications(notification_pb2.ListNotificationsRequest(), metadata=auth),
        lambda listed: len(listed.notifications) >= 1,
        timeout=30,
    )
    posts = eventually(lambda: webhook.received(user_id), lambda got: [p.status for p in got] == [503, 200], timeout=30)
    assert posts[-1].headers.get("Authorization", "").startswith("Basic ")

    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=auth)
    last = login(stubs, known, username, new_password, "last")
    stubs.accounts.DeleteAccount(
        account_pb2.DeleteAccountRequest(password=new_password), metadata=bearer(last.access_token)
    )


def test_a_whole_session_leaves_no_password_token_or_secret_in_any_log_line(
    session_setup, every_log_line, capfd, clock, webhook, new_username
):
    config, known, worker_stderr = session_setup
    server = RunningServer(config, clock)
    stubs = Stubs.connect(server.address)
    try:
        full_session(stubs, known, new_username("logs"), clock, webhook)
    finally:
        stubs.channel.close()
        server.stop()

    captured = capfd.readouterr()
    lines = [*every_log_line.lines, *every_log_line.json_lines, *captured.out.splitlines(), *captured.err.splitlines()]
    for path in worker_stderr:
        lines.extend(Path(path).read_text(errors="replace").splitlines())

    # The capture works: the session did log (and the workers did, in production), the audit log included.
    assert every_log_line.lines
    assert every_log_line.audit_events() >= {
        "login_attempted",
        "refresh_token_reused",
        "password_changed",
        "account_deleted",
    }
    for path in worker_stderr:
        text = Path(path).read_text(errors="replace")
        assert text.strip(), f"{path.name} is empty: nothing was captured"
        assert all(json.loads(line)["logger"] for line in text.splitlines()), f"{path.name} is not JSON lines"
    assert len(known.values) >= 25  # passwords, six logins' tokens by their parts, the webhook's credentials
    assert known.found_in(lines) == []
