"""`fittrack-loadgen`: drive a target load of readings through SyncReadings and say what the server sustained.

Every device belongs to a freshly registered user, keeps one SyncReadings
stream open and behaves as in the simulator (fittrack/clients/sync.py): a window of
batches in flight, resending after a broken connection. Batches are paced on
a fixed schedule per device, staggered across devices, so the fleet offers
`rate` readings per second however the acks come back; a device that falls
behind (its window full) catches up as soon as it has room. A paced device
sends no more readings at once than its share of the rate in a second
(`paced_batch`): a short run is not one burst of whole batches.

`generate_load` is the library entry, for benchmarks; `main` prints its
figures as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import grpc

from fittrack.clients.channel import PLAINTEXT, ChannelError, Security, add_tls_options, aio_channel
from fittrack.clients.command_line import (
    A_CHANCE,
    ANY_WHOLE_NUMBER,
    AT_LEAST_ONE,
    EXIT_FAILED,
    EXIT_USAGE,
    CommandParser,
    check_server,
    number,
    plural,
    report_failures,
    report_rpc_error,
    whole_number,
)
from fittrack.clients.sync import DeviceStats, DeviceSync, SimulatedReading, SyncBehaviour, percentile, register_users
from fittrack.generated.v1 import account_pb2_grpc, common_pb2

STEPS = common_pb2.METRIC_KIND_STEPS
CALORIES = common_pb2.METRIC_KIND_CALORIES_BURNED
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE
DISTANCE = common_pb2.METRIC_KIND_DISTANCE
# A device's minutes go back from now; after five years they start over, and the readings replace themselves.
HISTORY_MINUTES = 5 * 365 * 24 * 60
# The longest a paced device waits between two batches when its share of the rate allows a batch that often.
PACING_SECONDS = 1.0


@dataclass(frozen=True)
class LoadPlan:
    """What `generate_load` offers the server. Give `readings` for a fixed total, else it runs `duration` seconds."""

    devices: int = 10
    rate: float = 0.0  # readings per second over all devices; 0: as fast as the windows allow
    batch: int = 100
    duration: float = 10.0
    readings: int | None = None
    window: int = 4
    devices_per_user: int = 1
    logins: int = 8  # registrations and logins at a time
    disconnect_rate: float = 0.0
    seed: int = 0
    username_prefix: str = ""  # default: load-<random>


@dataclass(frozen=True)
class LoadFigures:
    """What the server sustained. `readings_per_s` counts delivered readings over `seconds`: from the first
    batch due to the last ack, and for a paced run at least the span its schedule covers (the readings offered,
    at the target rate), so a server that keeps up shows the target, never more. `batch` is the readings per
    batch as sent (`paced_batch`). `refused_devices` were refused their first stream (error_codes says with
    what): they started late, or never. Logins are timed apart."""

    devices: int
    users: int
    target_readings_per_s: float
    batch: int
    readings: int
    seconds: float
    readings_per_s: float
    batches: int
    acknowledged: int
    accepted: int
    duplicate: int
    rejected: int
    trimmed: int
    unacknowledged: int
    resent: int
    reconnects: int
    ack_p50_ms: float
    ack_p99_ms: float
    errors: int
    error_codes: dict[str, int]
    failed_devices: int
    refused_devices: int
    # Reconnects after gRPC lost a hello to a refusal it could not report (fittrack.clients.sync): no error.
    lost_hellos: int
    login_seconds: float

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.unacknowledged or self.failed_devices or self.refused_devices)

    def problem(self) -> str:
        """What kept the run from being ok, in one line."""
        parts = []
        if self.rejected:
            parts.append(f"{plural(self.rejected, 'batch', 'batches')} rejected")
        if self.unacknowledged:
            parts.append(f"{plural(self.unacknowledged, 'batch', 'batches')} never acknowledged")
        if self.failed_devices:
            parts.append(f"{plural(self.failed_devices, 'device')} of {self.devices:,} gave up")
        if self.refused_devices:
            one = self.refused_devices == 1
            parts.append(
                f"{plural(self.refused_devices, 'device')} of {self.devices:,} {'was' if one else 'were'} refused "
                f"{'its' if one else 'their'} first stream, so offered less than planned"
            )
        return ", ".join(parts) or "nothing went wrong"

    def hints(self) -> list[str]:
        """What to look at, from the errors the devices met."""
        hints = []
        if "RESOURCE_EXHAUSTED" in self.error_codes:
            hints.append(
                "the server limits a user's open streams (FITTRACK_MAX_STREAMS_PER_USER, 8 by default): "
                "lower --devices-per-user"
            )
        if "UNAVAILABLE" in self.error_codes or "device gave up" in self.error_codes:
            hints.append("the devices lost the server: is it still running? (error_codes counts what they met)")
        return hints

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def paced_batch(rate: float, devices: int, batch: int) -> int:
    """Readings per batch: `batch`, cut for a paced run to a device's share of the rate in PACING_SECONDS
    (at least one reading), so that no device sends more at once than the target allows in that time."""
    if rate <= 0:
        return batch
    return max(1, min(batch, math.floor(rate * PACING_SECONDS / devices)))


def paced_seconds(elapsed: float, offered: int, rate: float) -> float:
    """The span to count a run's readings over: a paced run's schedule covers `offered` readings at `rate`
    even when its last batch is acknowledged sooner (a batch is due at the start of its slot)."""
    return max(elapsed, offered / rate) if rate > 0 else elapsed


def batch_interval(rate: float, devices: int, batch: int) -> float:
    """Seconds between two batches of one device for the fleet to offer `rate` readings/s; 0 for no pacing."""
    return batch * devices / rate if rate > 0 else 0.0


def due_time(start: float, interval: float, device: int, devices: int, number: int) -> float:
    """When batch `number` (from 0) of `device` is due: on a fixed schedule, so late batches do not push
    the later ones back, with the devices spread evenly over one interval so the load is smooth."""
    return start + interval * (number + device / devices)


def split_readings(total: int, devices: int) -> list[int]:
    """`total` readings shared out over the devices as evenly as possible."""
    share, extra = divmod(total, devices)
    return [share + (1 if device < extra else 0) for device in range(devices)]


class LoadSource:
    """One device's batches: plausible readings of minutes going back from `first_minute`, four metrics a minute."""

    METRICS = (STEPS, CALORIES, HEART_RATE, DISTANCE)

    def __init__(
        self,
        plan: LoadPlan,
        device: int,
        start: float,
        deadline: float | None,
        budget: int | None,
        first_minute: int,
    ) -> None:
        self._plan = plan
        self._device = device
        self._start = start
        self._deadline = deadline
        self._budget = budget
        self._first_minute = first_minute
        self._batch = paced_batch(plan.rate, plan.devices, plan.batch)
        self._interval = batch_interval(plan.rate, plan.devices, self._batch)
        self._rng = random.Random(f"{plan.seed}/load/{device}")
        self._number = 0
        self._made = 0
        self._stats: DeviceStats | None = None
        # Server errors the device met before its first stream; None until it has one.
        self.errors_before_stream: int | None = None

    def watch(self, stats: DeviceStats) -> None:
        """Note the device's server errors when it first asks for a batch: right after its first welcome."""
        self._stats = stats

    async def __call__(self) -> Sequence[SimulatedReading] | None:
        if self.errors_before_stream is None:
            self.errors_before_stream = sum(self._stats.server_errors.values()) if self._stats else 0
        if self._budget is not None and self._made >= self._budget:
            return None
        loop = asyncio.get_running_loop()
        due = due_time(self._start, self._interval, self._device, self._plan.devices, self._number)
        if self._deadline is not None and max(due, loop.time()) >= self._deadline:
            return None
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        size = self._batch if self._budget is None else min(self._batch, self._budget - self._made)
        self._number += 1
        return [self._reading() for _ in range(size)]

    def _reading(self) -> SimulatedReading:
        index = self._made
        self._made += 1
        metric = self.METRICS[index % len(self.METRICS)]
        seconds = self._first_minute - 60 * (index // len(self.METRICS) % HISTORY_MINUTES)
        if metric == STEPS:
            value = float(self._rng.randint(0, 130))
        elif metric == CALORIES:
            value = round(self._rng.uniform(1.0, 8.0), 2)
        elif metric == HEART_RATE:
            value = float(self._rng.randint(55, 150))
        else:
            value = round(self._rng.uniform(0.0, 100.0), 1)
        return metric, seconds, value


async def generate_load(address: str, plan: LoadPlan, security: Security = PLAINTEXT) -> LoadFigures:
    """Register the users, run every device's stream until the plan is done, and measure."""
    users = math.ceil(plan.devices / plan.devices_per_user)
    prefix = plan.username_prefix or f"load-{secrets.token_hex(3)}"
    loop = asyncio.get_running_loop()
    async with aio_channel(address, security) as channel:
        login_started = loop.time()
        sessions = await register_users(
            account_pb2_grpc.AccountServiceStub(channel),
            [f"{prefix}-{user}" for user in range(users)],
            "UTC",
            plan.logins,
        )
        login_seconds = loop.time() - login_started
    start = loop.time()
    deadline = None if plan.readings is not None else start + plan.duration
    budgets = split_readings(plan.readings, plan.devices) if plan.readings is not None else [None] * plan.devices
    # Whole minutes in the past: the server refuses readings more than a day ahead, and pins seconds to the minute.
    first_minute = int(time.time()) // 60 * 60 - 60
    behaviour = SyncBehaviour(window=plan.window, disconnect_rate=plan.disconnect_rate)
    sources, syncs = [], []
    for device in range(plan.devices):
        source = LoadSource(plan, device, start, deadline, budgets[device], first_minute)
        sync = DeviceSync(
            address,
            f"load-{device}",
            sessions[device // plan.devices_per_user],
            source,
            behaviour,
            random.Random(f"{plan.seed}/device/{device}"),
            security,
        )
        source.watch(sync.stats)
        sources.append(source)
        syncs.append(sync)
    stats = list(await asyncio.gather(*(sync.run() for sync in syncs)))
    elapsed = loop.time() - start
    refused = sum(1 for source, d in zip(sources, stats, strict=True) if refused_first_stream(source, d))
    return figures_of(plan, users, stats, elapsed, login_seconds, refused)


def refused_first_stream(source: LoadSource, stats: DeviceStats) -> bool:
    """Whether the server ended the device's first connection with an error (it never had a stream, or
    got one only on a later try). Users are fresh, so at the start only the plan's own devices hold streams."""
    before = source.errors_before_stream
    return (sum(stats.server_errors.values()) if before is None else before) > 0


def figures_of(
    plan: LoadPlan, users: int, stats: list[DeviceStats], elapsed: float, login_seconds: float, refused: int
) -> LoadFigures:
    readings = sum(d.readings_delivered for d in stats)
    seconds = paced_seconds(elapsed, sum(d.readings for d in stats), plan.rate)
    latencies = [latency for d in stats for latency in d.ack_latencies]
    codes = sum((d.server_errors for d in stats), Counter())
    anomalies = sum(len(d.anomalies) for d in stats)
    failed = sum(1 for d in stats if d.error)
    if anomalies:
        codes["anomaly"] = anomalies
    if failed:
        codes["device gave up"] = failed
    return LoadFigures(
        devices=plan.devices,
        users=users,
        target_readings_per_s=plan.rate,
        batch=paced_batch(plan.rate, plan.devices, plan.batch),
        readings=readings,
        seconds=round(seconds, 3),
        readings_per_s=round(readings / seconds, 1) if seconds > 0 else 0.0,
        batches=sum(d.batches for d in stats),
        acknowledged=sum(d.accepted + d.duplicate for d in stats),
        accepted=sum(d.accepted for d in stats),
        duplicate=sum(d.duplicate for d in stats),
        rejected=sum(d.rejected for d in stats),
        trimmed=sum(d.trimmed for d in stats),
        unacknowledged=sum(d.unacknowledged for d in stats),
        resent=sum(d.resent for d in stats),
        reconnects=sum(d.reconnects for d in stats),
        ack_p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        ack_p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        errors=sum(codes.values()),
        error_codes=dict(codes),
        failed_devices=failed,
        refused_devices=refused,
        lost_hellos=sum(d.lost_hellos for d in stats),
        login_seconds=round(login_seconds, 3),
    )


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        prog="fittrack-loadgen",
        description="Register fresh users and drive a target load of readings through SyncReadings, one stream "
        "per device; print the figures as one JSON line. Exit status 1 when a batch was rejected or never "
        "acknowledged, or a device was refused its stream or gave up.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("FITTRACK_SERVER") or "127.0.0.1:50051",
        help="HOST:PORT of the server (default: $FITTRACK_SERVER or 127.0.0.1:50051)",
    )
    add_tls_options(parser)
    parser.add_argument("--devices", type=AT_LEAST_ONE, default=10, help="devices, one stream each (default 10)")
    parser.add_argument(
        "--devices-per-user",
        type=AT_LEAST_ONE,
        default=1,
        help="devices of one user, each with its own stream; the server allows a user 8 streams by default, "
        "FITTRACK_MAX_STREAMS_PER_USER (default 1)",
    )
    parser.add_argument(
        "--rate",
        type=number("readings per second, 0 or more (0: as fast as possible)", lambda value: value >= 0),
        default=0.0,
        help="readings per second over all devices; 0: as fast as possible",
    )
    parser.add_argument(
        "--batch",
        type=whole_number("1 to 1000", lambda value: 1 <= value <= 1000),
        default=100,
        help="readings per batch (default 100); with --rate, at most a device's share of the rate in a second",
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--duration",
        type=number("seconds above 0", lambda value: value > 0),
        default=10.0,
        help="seconds to offer load for (default 10)",
    )
    amount.add_argument("--readings", type=AT_LEAST_ONE, help="readings to send in all, instead of a duration")
    parser.add_argument("--window", type=AT_LEAST_ONE, default=4, help="batches in flight per stream (default 4)")
    parser.add_argument("--logins", type=AT_LEAST_ONE, default=8, help="registrations and logins at a time (default 8)")
    parser.add_argument(
        "--disconnect-rate", type=A_CHANCE, default=0.0, help="chance per batch of dropping the connection (default 0)"
    )
    parser.add_argument(
        "--seed", type=ANY_WHOLE_NUMBER, default=0, help="seed of the readings and the disconnects (default 0)"
    )
    args = parser.parse_args(argv)
    security = check_server(parser, args)
    plan = LoadPlan(
        devices=args.devices,
        rate=args.rate,
        batch=args.batch,
        duration=args.duration,
        readings=args.readings,
        window=args.window,
        devices_per_user=args.devices_per_user,
        logins=args.logins,
        disconnect_rate=args.disconnect_rate,
        seed=args.seed,
    )
    try:
        figures = asyncio.run(generate_load(args.server, plan, security))
    except grpc.RpcError as error:
        return report_rpc_error(error, args.server, security)
    except ChannelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    print(figures.to_json())
    if not figures.ok:
        report_failures([figures.problem()])
        for hint in figures.hints():
            print(f"hint: {hint}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
