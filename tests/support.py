"""Helpers shared by the test tiers: a real server in a background thread, stubs, polling."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from fittrack.app.config import Config
from fittrack.app.server import create_server
from fittrack.generated.v1 import (
    account_pb2,
    account_pb2_grpc,
    common_pb2,
    goal_pb2_grpc,
    metric_pb2,
    metric_pb2_grpc,
    notification_pb2_grpc,
    report_pb2_grpc,
)

T = TypeVar("T")
PASSWORD = "correct horse battery"


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class RunningServer:
    """A real Fittrack server on a loopback port, its event loop in a background thread."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-server", daemon=True)
        self._thread.start()
        self.server, self.port = self._call(self._create)
        self._call(self.server.start)
        self.address = f"127.0.0.1:{self.port}"

    async def _create(self):
        return create_server(self.config, self.clock)

    def _call(self, coroutine_function):
        return asyncio.run_coroutine_threadsafe(coroutine_function(), self._loop).result(timeout=30)

    def stop(self) -> None:
        self._call(lambda: self.server.stop(grace=1))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class Stubs:
    channel: grpc.Channel
    accounts: account_pb2_grpc.AccountServiceStub
    goals: goal_pb2_grpc.GoalServiceStub
    metrics: metric_pb2_grpc.MetricServiceStub
    reports: report_pb2_grpc.ReportServiceStub
    notifications: notification_pb2_grpc.NotificationServiceStub

    @classmethod
    def connect(cls, address: str) -> Stubs:
        channel = grpc.insecure_channel(address)
        return cls(
            channel,
            account_pb2_grpc.AccountServiceStub(channel),
            goal_pb2_grpc.GoalServiceStub(channel),
            metric_pb2_grpc.MetricServiceStub(channel),
            report_pb2_grpc.ReportServiceStub(channel),
            notification_pb2_grpc.NotificationServiceStub(channel),
        )


@dataclass
class User:
    """A registered, logged-in user: pass `user.auth` as metadata."""

    user_id: str
    username: str
    password: str
    login: account_pb2.LoginResponse

    @property
    def auth(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.login.access_token}")]


def server_settings(tmp_path: Path, **overrides) -> dict:
    """The Config values every test server shares, plus `overrides`.

    Fast bcrypt (cost 4, which the production profile refuses unless told it
    is on purpose), data in the test's own directory, a short shutdown, and
    the embedded server's own evaluator ticking once at start and then not
    for an hour: tests that move the clock evaluate the windows they choose
    (tests/e2e/test_evaluation.py); the schedule has its own test.
    """
    return {
        "listen": "127.0.0.1:0",
        "data_dir": tmp_path / "var",
        "bcrypt_rounds": 4,
        "allow_low_bcrypt_rounds": 1,
        "shutdown_grace_seconds": 1,
        "evaluation_tick_seconds": 3600,
        **overrides,
    }


def register_and_login(stubs: Stubs, username: str, time_zone: str = "UTC", password: str = PASSWORD) -> User:
    response = stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=password, profile=account_pb2.ProfileFields(time_zone=time_zone)
        )
    )
    login = stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=password))
    return User(response.profile.user_id, username, password, login)


def eventually(probe: Callable[[], T], check: Callable[[T], bool], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `probe` until `check` accepts its result; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}")
        time.sleep(interval)


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError `call` raises; fails the test if it succeeds."""
    try:
        result = call()
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"expected an RPC error, got {result!r}")


def minute_start(moment: datetime) -> int:
    """UTC seconds of the start of the minute containing `moment`."""
    return int(moment.timestamp()) // 60 * 60


def reading(metric: int, seconds: int, value: float):
    return metric_pb2.Reading(metric=metric, time=Timestamp(seconds=seconds), value=value)


def batch(readings, device_id: str = "watch-1", sequence: int = 0):
    return metric_pb2.ReadingBatch(device_id=device_id, sequence=sequence, readings=list(readings))


def upload(stubs: Stubs, user: User, *batches, timeout: float = 10):
    requests = iter([metric_pb2.UploadReadingsRequest(batch=b) for b in batches])
    return stubs.metrics.UploadReadings(requests, metadata=user.auth, timeout=timeout)


def view_today(stubs: Stubs, user: User, metric: int):
    request = metric_pb2.ViewMetricRequest(metric=metric, preset=common_pb2.RANGE_PRESET_TODAY)
    return stubs.metrics.ViewMetric(request, metadata=user.auth)


def local_midnight(clock: Callable[[], datetime], zone_name: str) -> int:
    """UTC seconds of the start of the local today in `zone_name`.

    Readings a few minutes after it always belong to the local today, at
    whatever hour the test runs (at most 24 h ahead, which the server accepts).
    """
    local_now = clock().astimezone(ZoneInfo(zone_name))
    return int(local_now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def http_get(url: str, method: str = "GET", timeout: float = 5) -> tuple[int, str]:
    """The status and body of a plain HTTP request, error statuses included."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
