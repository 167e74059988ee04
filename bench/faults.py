"""Faults on the cluster, measured: a fleet syncs through every balancer while one fault happens and heals.

One run: fresh users register, each user's watch streams paced batches of step readings through the
three balancers (a client that knows every balancer's address, as DNS with three A records gives it),
and probes make unary calls (a view, a profile read, a profile write, a registration) all along. After
a few seconds of calm the fault is made (infra/cluster/cluster.py: kill, cut, loss, latency), held, and
healed; the run waits until `cluster.py status` says every role is healthy again, lets every device
empty its outbox, and compares what the server shows with what was sent and acknowledged.

bench/cluster.py prints the figures as JSON lines; tests/cluster/test_faults.py asserts on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import grpc
import psycopg2
from google.type.date_pb2 import Date

from fittrack.clients.activity import STEPS
from fittrack.clients.sync import CHANNEL_OPTIONS, DeviceSync, SyncBehaviour, UserSession, register_users
from fittrack.generated.v1 import (
    account_pb2,
    account_pb2_grpc,
    common_pb2,
    goal_pb2,
    goal_pb2_grpc,
    metric_pb2,
    metric_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / "infra" / "cluster" / "cluster.py"
LAYOUT = tomllib.loads((ROOT / "infra" / "cluster" / "layout.toml").read_text())
HOSTS = {name: host["address"] for name, host in LAYOUT["hosts"].items()}
PORTS = LAYOUT["ports"]
# Every balancer, as a client that resolved three A records knows them; round_robin spreads calls over
# those that answer, and keepalive pings notice within seconds a balancer whose host was cut off.
TARGET = "ipv4:" + ",".join(f"{address}:{PORTS['grpc']}" for address in HOSTS.values())
KEEPALIVE = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
]
STEP_VALUE = 10.0  # every reading the same value: a day's total counts its minutes
PROBE_TIMEOUT = 5.0
# A device keeps trying through any one fault: it gives up only after this many failed connections in a row.
PATIENT = SyncBehaviour(window=4, ack_timeout=10.0, max_backoff=2.0, max_failures=1000)


# ---------------------------------------------------------------- the cluster, from outside


class Control:
    """The cluster's fault switches (infra/cluster/cluster.py) and what the runs need to know about it."""

    def cluster(self, *argv: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["python3", str(CLUSTER_SCRIPT), *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"cluster.py {' '.join(argv)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def healthy(self) -> bool:
        return (
            subprocess.run(["python3", str(CLUSTER_SCRIPT), "status"], capture_output=True, timeout=60).returncode == 0
        )

    def status(self) -> str:
        return subprocess.run(
            ["python3", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, timeout=60
        ).stdout

    def postgres_leader(self) -> str | None:
        """The host whose Patroni answers /primary with 200."""
        for name in (n for n, h in LAYOUT["hosts"].items() if "postgres" in h["roles"]):
            try:
                with urllib.request.urlopen(f"http://{HOSTS[name]}:{PORTS['patroni_rest']}/primary", timeout=2):
                    return name
            except Exception:  # noqa: BLE001 - 503 on a replica, nothing from a host cut off
                continue
        return None

    def readings_leader(self, topic: str = "readings") -> str:
        """The host whose broker leads most partitions of `topic`."""
        from kafka import KafkaAdminClient

        bootstrap = [f"{address}:{PORTS['kafka']}" for address in HOSTS.values()]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ft-bench-faults", request_timeout_ms=10_000)
        try:
            (described,) = admin.describe_topics([topic])
            brokers = {broker["broker_id"]: broker["host"] for broker in admin.describe_cluster()["brokers"]}
        finally:
            admin.close()
        led: dict[str, int] = {}
        for partition in described["partitions"]:
            address = brokers[partition["leader_id"]]
            led[address] = led.get(address, 0) + 1
        address = max(led, key=led.get)
        return next(name for name, a in HOSTS.items() if a == address)

    def accounts_held(self, usernames: list[str], host: str | None = None) -> set[str]:
        """Of these usernames, those the account database holds: through the write port, or on one host's
        PostgreSQL itself (a replica answers too)."""
        secrets_file = json.loads((ROOT / "var" / "cluster" / "secrets.json").read_text())
        pg = LAYOUT["postgres"]
        if host is None:
            address, port = HOSTS["h1"], PORTS["haproxy_pg_write"]
        else:
            address, port = HOSTS[host], PORTS["postgres"]
        connection = psycopg2.connect(
            host=address,
            port=port,
            dbname=pg["app_database"],
            user="postgres",
            password=secrets_file["pg_superuser"],
            connect_timeout=5,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT username FROM users WHERE username = ANY(%s)", (usernames,))
                return {row[0] for row in cursor.fetchall()}
        finally:
            connection.close()

    def in_recovery(self, host: str) -> bool:
        """Whether that host's PostgreSQL runs as a replica."""
        code = _http_status(f"http://{HOSTS[host]}:{PORTS['patroni_rest']}/replica")
        return code == 200


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------- faults


@dataclass
class Fault:
    """One fault: what makes it (returns the host it hit), how long it lasts, what heals it."""

    name: str
    what: str
    make: Callable[[Control], str]
    heal: Callable[[Control, str], None]
    hold: float = 20.0


def _kill(role: str, host: str) -> Callable[[Control], str]:
    def make(control: Control) -> str:
        control.cluster("kill", host, role)
        return host

    return make


def _heal(control: Control, host: str) -> None:
    control.cluster("heal", host)


def _cut_leader_broker(control: Control) -> str:
    host = control.readings_leader()
    control.cluster("cut", host, "--ports", "kafka,kafka_controller")
    return host


def _cut_postgres_leader(control: Control) -> str:
    host = control.postgres_leader()
    if host is None:
        raise RuntimeError("no PostgreSQL leader to cut off")
    control.cluster("cut", host)
    return host


def _loss(control: Control) -> str:
    control.cluster("loss", "h2", "5")
    return "h2"


def _latency(control: Control) -> str:
    control.cluster("latency", "h3", "200", "--reset-existing")  # long-lived connections too, as a real slow link
    return "h3"


def _latency_off(control: Control, host: str) -> None:
    control.cluster("latency", host, "off")


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("kafka-broker-killed", "SIGKILL to the Kafka broker on h3", _kill("kafka", "h3"), _heal),
        Fault(
            "kafka-leader-cut",
            "the broker leading most readings partitions cut off from the other hosts",
            _cut_leader_broker,
            _heal,
            hold=30.0,
        ),
        Fault(
            "postgres-leader-cut",
            "the host of the PostgreSQL leader cut off (Patroni fails over), then back (pg_rewind)",
            _cut_postgres_leader,
            _heal,
            hold=50.0,
        ),
        Fault("server-killed", "SIGKILL to the Fittrack server on h2, mid-stream", _kill("server", "h2"), _heal, 10.0),
        Fault("persister-killed", "SIGKILL to the persister on h1", _kill("persister", "h1"), _heal),
        Fault("dispatcher-killed", "SIGKILL to the dispatcher on h2", _kill("dispatcher", "h2"), _heal),
        Fault("ferretdb-killed", "SIGKILL to FerretDB on h1", _kill("ferretdb", "h1"), _heal),
        Fault(
            "packet-loss",
            "h2 loses 5% of its packets in each direction",
            _loss,
            _heal,
            hold=30.0,
        ),
        Fault("latency", "200 ms more on every round trip from h3 to the other hosts", _latency, _latency_off, 30.0),
    )
}


# ---------------------------------------------------------------- the traffic


@dataclass
class Call:
    kind: str
    started: float
    ended: float
    code: str  # "OK" or the status code's name


@dataclass
class Traffic:
    """The fleet's devices and the probes, running until told to stop."""

    sessions: list[UserSession]
    day: date
    midnight: int
    calls: list[Call] = field(default_factory=list)
    produced: dict[str, int] = field(default_factory=dict)  # readings made per user
    registered: dict[str, float] = field(default_factory=dict)  # acknowledged registrations: username -> when
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def source(self, username: str, per_batch: int, interval: float):
        self.produced[username] = 0

        async def next_batch():
            made = self.produced[username]
            if self.stop.is_set() or made + per_batch > 24 * 60:
                return None
            await asyncio.sleep(interval)  # the device's own pace, not a wait for anything
            self.produced[username] = made + per_batch
            return [(STEPS, self.midnight + 60 * (made + n), STEP_VALUE) for n in range(per_batch)]

        return next_batch

    async def probe(self, kind: str, call: Callable[[], Awaitable[object]]) -> None:
        started = time.monotonic()
        try:
            await call()
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        self.calls.append(Call(kind, started, time.monotonic(), code))

    async def probes(self, channel: grpc.aio.Channel, interval: float = 0.25) -> None:
        accounts = account_pb2_grpc.AccountServiceStub(channel)
        metrics = metric_pb2_grpc.MetricServiceStub(channel)
        view = metric_pb2.ViewMetricRequest(
            metric=STEPS,
            dates=common_pb2.DateRange(start=_date(self.day), end=_date(self.day)),
        )
        rng = random.Random(1)
        turn = 0
        while not self.stop.is_set():
            session = self.sessions[turn % len(self.sessions)]
            metadata = [("authorization", f"Bearer {session.access_token}")]
            weight = account_pb2.ProfileFields(weight_kg=round(rng.uniform(50, 90), 1))
            # Factories, one call at a time: an aio call starts as soon as it is made.
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "view": partial(metrics.ViewMetric, view, metadata=metadata, timeout=PROBE_TIMEOUT),
                "profile": partial(
                    accounts.GetProfile, account_pb2.GetProfileRequest(), metadata=metadata, timeout=PROBE_TIMEOUT
                ),
                "update": partial(
                    accounts.UpdateProfile,
                    account_pb2.UpdateProfileRequest(profile=weight),
                    metadata=metadata,
                    timeout=PROBE_TIMEOUT,
                ),
            }
            if turn % 8 == 0:
                calls["register"] = partial(self._register, accounts)
            for kind, call in calls.items():
                await self.probe(kind, call)
            turn += 1
            await asyncio.sleep(interval)

    async def _register(self, accounts) -> None:
        username = f"fault-{secrets.token_hex(5)}"
        await accounts.Register(
            account_pb2.RegisterRequest(
                username=username,
                password=secrets.token_urlsafe(18),
                profile=account_pb2.ProfileFields(time_zone="UTC"),
            ),
            timeout=PROBE_TIMEOUT * 2,
        )
        self.registered[username] = time.monotonic()


def _date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)


async def _total(metrics, session: UserSession, day: date) -> float:
    request = metric_pb2.ViewMetricRequest(metric=STEPS, dates=common_pb2.DateRange(start=_date(day), end=_date(day)))
    view = await metrics.ViewMetric(request, metadata=await session.metadata(), timeout=10)
    return sum(d.value for d in view.days)


async def _shown_totals(channel, traffic: Traffic, deadline: float) -> dict[str, float]:
    """Each user's steps for the day, once they equal what was made or at the deadline (eventual consistency)."""
    metrics = metric_pb2_grpc.MetricServiceStub(channel)
    shown: dict[str, float] = {}
    while True:
        for session in traffic.sessions:
            try:
                shown[session.username] = await _total(metrics, session, traffic.day)
            except grpc.aio.AioRpcError:
                shown.setdefault(session.username, 0.0)
        if all(shown[s.username] == traffic.produced[s.username] * STEP_VALUE for s in traffic.sessions):
            return shown
        if time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.5)


async def _caught_up(channel, traffic: Traffic, acknowledged: dict[str, int], timeout: float) -> float | None:
    """Seconds until every user's view shows at least what had been acknowledged; None at the deadline."""
    metrics = metric_pb2_grpc.MetricServiceStub(channel)
    started = time.monotonic()
    behind = {s.username: s for s in traffic.sessions}
    while time.monotonic() - started < timeout:
        for name, session in list(behind.items()):
            with contextlib.suppress(grpc.aio.AioRpcError):
                if await _total(metrics, session, traffic.day) >= acknowledged[name] * STEP_VALUE:
                    del behind[name]
        if not behind:
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)
    return None


async def _notified(channel, sessions: list[UserSession], timeout: float) -> tuple[int, float | None]:
    """How many users have their GOAL_MET notification, and in how many seconds all had it (None: not all)."""
    notifications = notification_pb2_grpc.NotificationServiceStub(channel)
    started = time.monotonic()
    waiting = {s.username: s for s in sessions}
    while True:
        for name, session in list(waiting.items()):
            with contextlib.suppress(grpc.aio.AioRpcError):
                listed = await notifications.ListNotifications(
                    notification_pb2.ListNotificationsRequest(), metadata=await session.metadata(), timeout=10
                )
                if any(n.kind == notification_pb2.NOTIFICATION_KIND_GOAL_MET for n in listed.notifications):
                    del waiting[name]
        if not waiting:
            return len(sessions), round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout:
            return len(sessions) - len(waiting), None
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------- one run


async def _until(predicate: Callable[[], bool], timeout: float, interval: float = 1.0) -> float | None:
    """Seconds until predicate() (run in a thread) is true; None at the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await asyncio.to_thread(predicate):
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


async def run_fault(
    fault: Fault,
    control: Control | None = None,
    users: int = 8,
    per_batch: int = 10,
    interval: float = 0.5,
    calm: float = 5.0,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Run the fleet through one fault; the figures, as bench/cluster.py prints them."""
    control = control or Control()
    if not await _until(control.healthy, 180, 2):
        raise RuntimeError(f"the cluster is not healthy before {fault.name}:\n{control.status()}")
    now = datetime.now(UTC)
    day = now.date()
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    async with grpc.aio.insecure_channel(TARGET, options=KEEPALIVE) as channel:
        prefix = f"{fault.name[:12]}-{secrets.token_hex(3)}"
        sessions = await register_users(
            account_pb2_grpc.AccountServiceStub(channel), [f"{prefix}-{n}" for n in range(users)], "UTC"
        )
        traffic = Traffic(sessions, day, midnight)
        # A daily steps goal that the watches meet a few seconds into the fault: its GOAL_MET notification
        # goes through Kafka to a dispatcher, which stores it.
        target = STEP_VALUE * per_batch * (calm + 5) / interval
        goals = goal_pb2_grpc.GoalServiceStub(channel)
        for session in sessions:
            request = goal_pb2.CreateGoalRequest(
                metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=target, notify=True
            )
            await goals.CreateGoal(request, metadata=await session.metadata(), timeout=30)
        devices = [
            DeviceSync(
                TARGET,
                f"watch-{n}",
                session,
                traffic.source(session.username, per_batch, interval),
                PATIENT,
                random.Random(n),
                options=[*CHANNEL_OPTIONS, *KEEPALIVE],
            )
            for n, session in enumerate(sessions)
        ]
        running = [asyncio.create_task(device.run()) for device in devices]
        probing = asyncio.create_task(traffic.probes(channel))
        host, healed = fault.name, False
        try:
            await asyncio.sleep(calm)  # traffic before the fault, to compare with
            log(f"{fault.name}: {fault.what}")
            made_at = time.monotonic()
            host = await asyncio.to_thread(fault.make, control)
            await asyncio.sleep(fault.hold)  # the fault lasts this long
            # Still faulted: what was acknowledged so far must show, and each user's goal must have been
            # announced, by the processes left (work moved to them), not by those the heal restarts.
            acknowledged = {s.username: d.stats.readings_delivered for s, d in zip(sessions, devices, strict=True)}
            persisted_within = await _caught_up(channel, traffic, acknowledged, timeout=60)
            notified_within = await _notified(channel, sessions, timeout=60)
            healed_at = time.monotonic()
            await asyncio.to_thread(fault.heal, control, host)
            healed = True
            healthy_after = await _until(control.healthy, 240, 1)
            log(f"{fault.name}: healed; healthy again after {healthy_after} s")
            await asyncio.sleep(calm)  # traffic after the heal
            traffic.stop.set()
            await probing
            stats = await asyncio.wait_for(asyncio.gather(*running), timeout=180)
            shown = await _shown_totals(channel, traffic, time.monotonic() + 90)
        finally:
            traffic.stop.set()
            for task in (*running, probing):
                task.cancel()
            await asyncio.gather(*running, probing, return_exceptions=True)
            if not healed:  # whatever failed, the next run must find the cluster whole
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(_heal, control, host if host in HOSTS else "h1")

    produced = sum(traffic.produced.values())
    acknowledged = sum(s.readings_delivered for s in stats)
    stored = round(sum(shown.values()) / STEP_VALUE)
    figures = {
        "fault": fault.name,
        "what": fault.what,
        "host": host,
        "devices": len(devices),
        "readings_sent": produced,
        "readings_acknowledged": acknowledged,
        "unacknowledged_batches": sum(s.unacknowledged for s in stats),
        "missing": max(0, acknowledged - stored),
        "counted_twice": max(0, stored - produced),
        "reconnects": sum(s.reconnects for s in stats),
        "device_errors": [s.error for s in stats if s.error],
    }
    figures.update(_call_figures(traffic.calls, made_at, healed_at))
    figures["persisted_while_faulted_within_s"] = persisted_within
    figures["users_notified_while_faulted"] = notified_within[0]
    figures["notified_while_faulted_within_s"] = notified_within[1]
    figures["healthy_after_heal_s"] = None if healthy_after is None else round(healthy_after, 1)
    registered = list(traffic.registered)
    held = await asyncio.to_thread(control.accounts_held, registered)
    figures["accounts_acknowledged"] = len(registered)
    figures["accounts_acknowledged_while_faulted"] = sum(
        made_at <= at < healed_at for at in traffic.registered.values()
    )
    figures["accounts_lost"] = sorted(set(registered) - held)
    if fault.name == "postgres-leader-cut":
        figures.update(await _old_leader_figures(control, host, registered))
    return figures


def _call_figures(calls: list[Call], made_at: float, healed_at: float) -> dict:
    during = [c for c in calls if made_at <= c.started < healed_at]
    failed = [c for c in calls if c.started >= made_at and c.code != "OK"]
    # A call still in flight at the heal may have been failed by it (a proxy going away): counted with the heal.
    failed_during = [c for c in failed if c.ended < healed_at]
    codes: dict[str, int] = {}
    for call in failed:
        codes[call.code] = codes.get(call.code, 0) + 1
    spans: dict[str, list[float]] = {}  # per kind of call: first and last failure, seconds after the fault
    for call in failed:
        first, last = spans.get(call.kind, [call.started - made_at] * 2)
        spans[call.kind] = [round(min(first, call.started - made_at), 1), round(max(last, call.ended - made_at), 1)]
    return {
        "failures_from_to_s": spans,
        "calls_during_fault": len(during),
        "success_share_during_fault": round(sum(c.code == "OK" for c in during) / len(during), 3) if during else None,
        "failed_calls": codes,
        # From the fault until the last call made while it lasted that failed ended: from then on, until the
        # heal, everything answered. Calls failed by the heal itself (a proxy going away) are counted apart.
        "answering_again_after_s": round(max(c.ended for c in failed_during) - made_at, 1) if failed_during else 0.0,
        "calls_failed_at_or_after_heal": len(failed) - len(failed_during),
        "fault_held_s": round(healed_at - made_at, 1),
    }


async def _old_leader_figures(control: Control, old_leader: str, registered: list[str]) -> dict:
    """After the old leader's host came back: it follows the new leader, and holds every account written
    and acknowledged while it was away."""
    rejoined = await _until(lambda: control.in_recovery(old_leader), 120, 1)
    missing = set(registered)
    started = time.monotonic()
    while missing and time.monotonic() - started < 60:
        with contextlib.suppress(psycopg2.Error):
            missing -= await asyncio.to_thread(control.accounts_held, sorted(missing), old_leader)
        if missing:
            await asyncio.sleep(1)
    return {
        "new_leader": control.postgres_leader(),
        "old_leader_replica_after_s": None if rejoined is None else round(rejoined, 1),
        "accounts_missing_on_old_leader": sorted(missing),
    }


# ---------------------------------------------------------------- the cluster for a run


def cannot_run() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    import os
    import shutil
    import sys

    if sys.platform != "linux":
        return "the cluster needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the cluster needs root: it makes network namespaces (ip netns) and runs PostgreSQL as postgres"
    if not shutil.which("ip") or not shutil.which("unshare"):
        return "the cluster needs iproute2's ip and util-linux's unshare"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return "this machine cannot make network namespaces (unshare --net failed)"
    return None


@contextlib.contextmanager
def cluster_running(control: Control | None = None) -> Iterator[Control]:
    """The cluster up and healthy for the block: started (and stopped after) unless it already was."""
    control = control or Control()
    was_up = control.healthy()
    if not was_up:
        subprocess.run(["make", "cluster"], cwd=ROOT, check=True, timeout=900)
    try:
        deadline = time.monotonic() + 120
        while not control.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become healthy:\n{control.status()}")
            time.sleep(2)
        yield control
    finally:
        if not was_up:
            subprocess.run(["make", "cluster-stop"], cwd=ROOT, check=True, timeout=300)
