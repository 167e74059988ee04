"""A simulated wearable: realistic days of per-minute readings, synced over SyncReadings.

`simulate_day` is the reusable part (the `fittrack simulate day` command uses
it too); `main` is the `fittrack-simulator` command, which registers fresh
users and runs a fleet of their devices concurrently, each syncing its
simulated days the way a wearable does (see fittrack/clients/sync.py): a window of
batches in flight, random dropped connections, resuming from the welcome.
At the end it checks through ViewMetric that every user's steps per day are
exactly what was simulated: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import queue
import random
import secrets
import sys
import time as clock
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import NoReturn
from zoneinfo import ZoneInfo

import grpc
from google.type.date_pb2 import Date

from fittrack.clients.channel import (
    PLAINTEXT,
    ChannelError,
    Security,
    add_tls_options,
    aio_channel,
    explain_unavailable,
    split_target,
)
from fittrack.clients.sync import (
    BatchSource,
    DeviceStats,
    DeviceSync,
    SimulatedReading,
    SyncBehaviour,
    UserSession,
    reading_message,
    register_users,
    rejection,
)
from fittrack.generated.v1 import account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc

STEPS = common_pb2.METRIC_KIND_STEPS
CALORIES = common_pb2.METRIC_KIND_CALORIES_BURNED
DISTANCE = common_pb2.METRIC_KIND_DISTANCE
ACTIVE_MINUTES = common_pb2.METRIC_KIND_ACTIVE_MINUTES
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE

DEFAULT_BATCH_SIZE = 60
MINUTES_PER_DAY = 24 * 60
# The server refuses readings from before this instant (fittrack/core/domain/metrics.py), so days before it are refused
# here, before anything is sent.
EARLIEST_READING = datetime(2000, 1, 1, tzinfo=UTC)
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Pace:
    """How a minute is spent; the figures are typical for an adult."""

    name: str
    steps: tuple[int, int]
    stride_m: float
    heart_rate_above_rest: float
    kcal_per_step: float
    active: bool


SLEEP = Pace("sleep", (0, 0), 0.0, -8, 0.0, False)
# Mostly still; the odd minute of a few steps is drawn in simulate_day.
SEDENTARY = Pace("sedentary", (0, 0), 0.6, 6, 0.035, False)
# Pottering about the house or office: a few dozen steps, not exercise.
LIGHT = Pace("light", (15, 70), 0.6, 20, 0.035, False)
WALK = Pace("walk", (95, 125), 0.75, 42, 0.045, True)
RUN = Pace("run", (150, 180), 1.1, 95, 0.07, True)


def simulate_day(day: date, zone: ZoneInfo | str, seed: int, until: datetime | None = None) -> list[SimulatedReading]:
    """One local day of a wrist-worn tracker, in time order.

    Heart rate and calories come every minute (the watch is worn day and
    night); steps and distance only in minutes with movement and active
    minutes only in minutes of brisk activity, as real trackers report them.
    With `until`, minutes that have not fully passed by then are left out.
    The same day, zone and seed always give the same readings.
    """
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    rng = random.Random(seed)
    plan = _plan_day(day, rng)
    resting_heart_rate = rng.uniform(52, 72)
    basal_kcal_per_minute = rng.uniform(0.95, 1.3)
    stride_scale = rng.uniform(0.9, 1.1)

    # Walking the UTC minutes between two local midnights gets 23 or 25 hour days right.
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    cutoff = int(until.timestamp()) if until is not None else None
    heart_rate = resting_heart_rate
    readings: list[SimulatedReading] = []
    moment = start
    while moment < end:
        seconds = int(moment.timestamp())
        if cutoff is not None and seconds + 60 > cutoff:
            break
        local = moment.astimezone(zone)
        pace = plan[local.hour * 60 + local.minute]
        # A heart does not jump to its new rate: ease towards it, with some noise.
        target = resting_heart_rate + pace.heart_rate_above_rest + rng.gauss(0, 3)
        heart_rate += 0.3 * (target - heart_rate)
        steps = rng.randint(*pace.steps)
        if pace is SEDENTARY and rng.random() < 0.08:
            steps = rng.randint(1, 12)  # getting up for a moment
        calories = basal_kcal_per_minute * (0.9 if pace is SLEEP else 1.0) + steps * pace.kcal_per_step
        readings.append((HEART_RATE, seconds, float(round(min(max(heart_rate, 35), 200)))))
        readings.append((CALORIES, seconds, round(calories, 2)))
        if steps:
            stride = pace.stride_m * stride_scale
            readings.append((STEPS, seconds, float(steps)))
            readings.append((DISTANCE, seconds, round(steps * stride, 1)))
        if pace.active:
            readings.append((ACTIVE_MINUTES, seconds, 1.0))
        moment += timedelta(minutes=1)
    return readings


def _plan_day(day: date, rng: random.Random) -> list[Pace]:
    """What the person does in each minute of their local day (index: minutes since midnight)."""
    wake = rng.randint(6 * 60, 7 * 60 + 45)
    bed = rng.randint(22 * 60, 23 * 60 + 45)
    plan = [SLEEP] * wake + [SEDENTARY] * (bed - wake) + [SLEEP] * (MINUTES_PER_DAY - bed)

    def spend(start: int, minutes: int, pace: Pace) -> None:
        for minute in range(max(start, wake), min(start + minutes, bed)):
            plan[minute] = pace

    liveliness = rng.uniform(0.7, 1.2)
    for _ in range(int(rng.randint(20, 35) * liveliness)):
        spend(rng.randint(wake, bed), rng.randint(2, 8), LIGHT)
    if day.weekday() < 5:
        spend(wake + rng.randint(40, 70), rng.randint(10, 25), WALK)
        spend(rng.randint(17 * 60, 18 * 60 + 30), rng.randint(10, 25), WALK)
        if rng.random() < 0.7:
            spend(rng.randint(12 * 60, 13 * 60 + 30), rng.randint(5, 30), WALK)
    elif rng.random() < 0.8:
        spend(rng.randint(10 * 60, 16 * 60), rng.randint(30, 90), WALK)
    if rng.random() < 0.35:
        start = wake + rng.randint(5, 20) if rng.random() < 0.5 else rng.randint(18 * 60 + 30, 20 * 60)
        spend(start, rng.randint(20, 50), RUN)
    return plan


@dataclass
class SyncResult:
    """What the server answered to one device's sync."""

    device_id: str
    resumed_after: int = 0
    batches_accepted: int = 0
    batches_duplicate: int = 0
    batches_rejected: int = 0
    readings_accepted: int = 0
    rejections: list[str] = field(default_factory=list)


def sync_readings(
    stub: metric_pb2_grpc.MetricServiceStub,
    readings: Sequence[SimulatedReading],
    device_id: str,
    metadata: Sequence[tuple[str, str]] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout: float | None = None,
) -> SyncResult:
    """Say hello, then send the readings in numbered batches after the last durable one, and count the acks."""
    outbox: queue.Queue[metric_pb2.SyncReadingsRequest | None] = queue.Queue()

    def requests() -> Iterator[metric_pb2.SyncReadingsRequest]:
        while (request := outbox.get()) is not None:
            yield request

    outbox.put(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device_id)))
    responses = stub.SyncReadings(requests(), metadata=list(metadata), timeout=timeout)
    try:
        first = next(responses)
        if first.WhichOneof("message") != "welcome":
            raise RuntimeError(f"the server answered the hello with {first.WhichOneof('message')!r}, not a welcome")
        result = SyncResult(device_id, resumed_after=first.welcome.last_durable_sequence)
        # The sequence only has to grow; numbering after the durable one lets the server spot resends.
        for offset in range(0, len(readings), batch_size):
            batch = metric_pb2.ReadingBatch(
                device_id=device_id,
                sequence=result.resumed_after + 1 + offset // batch_size,
                readings=[reading_message(*reading) for reading in readings[offset : offset + batch_size]],
            )
            outbox.put(metric_pb2.SyncReadingsRequest(batch=batch))
        outbox.put(None)
        for response in responses:
            _count(result, response.ack)
        return result
    finally:
        # Ends the request generator if the call failed before it was told to stop.
        outbox.put(None)


def _count(result: SyncResult, ack: metric_pb2.BatchAck) -> None:
    if ack.status == metric_pb2.BatchAck.STATUS_ACCEPTED:
        result.batches_accepted += 1
        result.readings_accepted += ack.readings_accepted
    elif ack.status == metric_pb2.BatchAck.STATUS_DUPLICATE:
        result.batches_duplicate += 1
    else:
        result.batches_rejected += 1
        result.rejections.append(rejection(ack.sequence, ack.reason))


# --- more devices of one person ---


def simulate_phone(watch: Sequence[SimulatedReading], seed: int) -> list[SimulatedReading]:
    """What a phone carried alongside the watch counts: steps and distance, in the minutes it is in a pocket.

    It goes along on most walks and runs and on some of the pottering about, and
    counts a little differently from the wrist, sometimes more: the day's merged
    steps (the higher device per minute) are then more than the watch's alone.
    """
    rng = random.Random(seed)
    stride = rng.uniform(0.68, 0.78)
    steps = [(seconds, value) for metric, seconds, value in watch if metric == STEPS]
    readings: list[SimulatedReading] = []
    # A bout is a run of consecutive minutes with steps; the phone is carried for a whole bout or not at all.
    for _, bout in groupby(enumerate(steps), key=lambda item: item[1][0] // 60 - item[0]):
        minutes = [minute for _, minute in bout]
        brisk = sum(value for _, value in minutes) / len(minutes) >= 80
        if rng.random() >= (0.9 if brisk else 0.35):
            continue
        for seconds, value in minutes:
            counted = min(1000, round(value * rng.uniform(0.85, 1.08)))
            if counted:
                readings.append((STEPS, seconds, float(counted)))
                readings.append((DISTANCE, seconds, round(counted * stride, 1)))
    return readings


def within_hours(
    readings: Iterable[SimulatedReading], zone: ZoneInfo, hours: tuple[int, int]
) -> list[SimulatedReading]:
    """The readings whose local hour is in [first, last): a slice of the day, for short runs."""
    first, last = hours
    return [r for r in readings if first <= datetime.fromtimestamp(r[1], zone).hour < last]


def merged_daily_totals(
    devices: Iterable[Sequence[SimulatedReading]], zone: ZoneInfo, metric: int = STEPS
) -> dict[date, float]:
    """A user's daily totals as the server merges them: per minute the highest value of any device, summed per day."""
    per_minute: dict[int, float] = {}
    for readings in devices:
        for kind, seconds, value in readings:
            if kind == metric:
                per_minute[seconds] = max(value, per_minute.get(seconds, 0.0))
    totals: defaultdict[date, float] = defaultdict(float)
    for seconds, value in per_minute.items():
        totals[datetime.fromtimestamp(seconds, zone).date()] += value
    return dict(totals)


def day_seed(base: int, user: int, day: date, device: int = 0) -> int:
    return zlib.crc32(f"{base}/{user}/{day.isoformat()}/{device}".encode())


def batches_of(readings: Sequence[SimulatedReading], size: int) -> BatchSource:
    chunks = iter([readings[offset : offset + size] for offset in range(0, len(readings), size)])

    async def source() -> Sequence[SimulatedReading] | None:
        return next(chunks, None)

    return source


# --- the fittrack-simulator command ---


@dataclass(frozen=True)
class FleetPlan:
    """What `run_fleet` simulates. Devices 0, 1, ... of a user are a watch, then phones."""

    devices: int = 3
    devices_per_user: int = 1
    time_zone: str = "UTC"
    last_day: date | None = None  # default: today in the time zone, up to now
    days: int = 1
    hours: tuple[int, int] = (0, 24)  # local hours of each day to sync
    batch_size: int = DEFAULT_BATCH_SIZE
    behaviour: SyncBehaviour = field(default_factory=SyncBehaviour)
    seed: int = 0
    verify: bool = True
    verify_timeout: float = 60.0
    username_prefix: str = ""  # default: sim-<random>


DEVICE_FIGURES = ("batches", "readings", "sent", "resent", "accepted", "duplicate", "rejected", "trimmed")
DEVICE_FIGURES += ("readings_accepted", "drops", "reconnects")


@dataclass
class FleetReport:
    plan: FleetPlan
    days: list[date]
    users: int
    devices: list[DeviceStats]
    seconds: float
    sync_seconds: float
    mismatches: list[str] = field(default_factory=list)
    verified: bool = False
    # Per username: the steps per day the simulator generated (merged as the server merges devices) and,
    # once verified, what ViewMetric showed.
    simulated_steps: dict[str, dict[date, float]] = field(default_factory=dict)
    server_steps: dict[str, dict[date, float]] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        """Why the run failed, device by device; empty when every batch was delivered and accepted."""
        problems = []
        for device in self.devices:
            if device.error:
                problems.append(f"{device.device_id}: {device.error}")
            if device.unacknowledged:
                never = plural(device.unacknowledged, "batch", "batches")
                problems.append(f"{device.device_id}: {never} never acknowledged")
            problems.extend(f"{device.device_id}: rejected {rejection}" for rejection in device.rejections)
        return problems + self.mismatches

    def figures(self) -> dict:
        total = {name: sum(getattr(d, name) for d in self.devices) for name in DEVICE_FIGURES}
        errors = sum((d.server_errors for d in self.devices), Counter())
        return {
            "devices": len(self.devices),
            "users": self.users,
            "days": [day.isoformat() for day in self.days],
            "seed": self.plan.seed,
            **total,
            "server_errors": dict(errors),
            "seconds": round(self.seconds, 3),
            "sync_seconds": round(self.sync_seconds, 3),
            "verified": self.verified,
            "failures": self.failures,
        }

    def summary(self) -> str:
        f = self.figures()
        first, last = self.plan.hours
        hours = "" if (first, last) == (0, 24) else f", {first:02}:00-{last:02}:00"
        days = self.days[0].isoformat() if len(self.days) == 1 else f"{self.days[0]} to {self.days[-1]}"
        errors = "".join(f", {count} {code}" for code, count in sorted(f["server_errors"].items()))
        lines = [
            f"{plural(f['devices'], 'device')} of {plural(f['users'], 'user')} synced {days}{hours} "
            f"({self.plan.time_zone}) "
            f"in {f['seconds']:.1f} s (seed {f['seed']})",
            f"  batches: {f['batches']:,} ({f['resent']:,} resent, {f['trimmed']:,} trimmed by a welcome), "
            f"readings: {f['readings']:,}",
            f"  reconnects: {f['reconnects']:,} ({f['drops']:,} dropped by the devices{errors}), "
            f"duplicates acked: {f['duplicate']:,}, rejected: {f['rejected']:,}",
        ]
        if self.verified:
            lines.append(
                f"  verified: every user's steps per day are what was simulated ({plural(f['users'], 'user')})"
            )
        return "\n".join(lines)


async def run_fleet(address: str, plan: FleetPlan, security: Security = PLAINTEXT) -> FleetReport:
    """Register the users, sync every device's days concurrently, then check the users' steps per day."""
    started = clock.monotonic()
    zone = ZoneInfo(plan.time_zone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    last_day = plan.last_day or today
    days = [last_day - timedelta(days=back) for back in reversed(range(plan.days))]
    users = math.ceil(plan.devices / plan.devices_per_user)
    prefix = plan.username_prefix or f"sim-{secrets.token_hex(3)}"
    async with aio_channel(address, security) as channel:
        sessions = await register_users(
            account_pb2_grpc.AccountServiceStub(channel), [f"{prefix}-{user}" for user in range(users)], plan.time_zone
        )
        readings = _fleet_readings(plan, users, days, zone, until=now if last_day >= today else None)
        syncs = []
        for index in range(plan.devices):
            user, role = divmod(index, plan.devices_per_user)
            rng = random.Random(f"{plan.seed}/device/{index}")
            device_id = f"{'watch' if role == 0 else 'phone'}-{rng.getrandbits(16):04x}"
            source = batches_of(readings[user][role], plan.batch_size)
            syncs.append(DeviceSync(address, device_id, sessions[user], source, plan.behaviour, rng, security))
        synced = clock.monotonic()
        stats = await asyncio.gather(*(sync.run() for sync in syncs))
        sync_seconds = clock.monotonic() - synced
        report = FleetReport(plan, days, users, list(stats), 0.0, sync_seconds)
        for user, session in enumerate(sessions):
            merged = merged_daily_totals(readings[user], zone)
            report.simulated_steps[session.username] = {day: merged.get(day, 0.0) for day in days}
        if plan.verify and not report.failures:
            metrics = metric_pb2_grpc.MetricServiceStub(channel)
            checks = await asyncio.gather(
                *(
                    _check_steps(metrics, session, days, report.simulated_steps[session.username], plan.verify_timeout)
                    for session in sessions
                )
            )
            for session, (shown, mismatch) in zip(sessions, checks, strict=True):
                report.server_steps[session.username] = shown
                if mismatch:
                    report.mismatches.append(mismatch)
            report.verified = not report.mismatches
    report.seconds = clock.monotonic() - started
    return report


def _fleet_readings(
    plan: FleetPlan, users: int, days: list[date], zone: ZoneInfo, until: datetime | None
) -> list[list[list[SimulatedReading]]]:
    """Per user, per device (watch first), the readings of all the days, in time order."""
    fleet = []
    for user in range(users):
        roles = min(plan.devices_per_user, plan.devices - user * plan.devices_per_user)
        devices: list[list[SimulatedReading]] = [[] for _ in range(roles)]
        for day in days:
            watch = simulate_day(day, zone, day_seed(plan.seed, user, day), until=until)
            for role in range(roles):
                worn = watch if role == 0 else simulate_phone(watch, day_seed(plan.seed, user, day, role))
                devices[role].extend(within_hours(worn, zone, plan.hours))
        fleet.append(devices)
    return fleet


async def _check_steps(
    metrics: metric_pb2_grpc.MetricServiceStub,
    session: UserSession,
    days: list[date],
    wanted: dict[date, float],
    timeout: float,
) -> tuple[dict[date, float], str | None]:
    """The user's steps per day as ViewMetric shows them, once they equal `wanted` or `timeout` has passed,
    and what differs (None when nothing does).

    Readings show up once a worker has applied them, and only ever add up towards the total, so a day
    above what was simulated is a failure at once.
    """
    request = metric_pb2.ViewMetricRequest(
        metric=STEPS,
        dates=common_pb2.DateRange(start=_proto_date(days[0]), end=_proto_date(days[-1])),
    )
    deadline = clock.monotonic() + timeout
    while True:
        view = await metrics.ViewMetric(request, metadata=await session.metadata(), timeout=30)
        shown = {date(d.date.year, d.date.month, d.date.day): d.value for d in view.days}
        if shown == wanted:
            return shown, None
        too_many = any(shown.get(day, 0.0) > value for day, value in wanted.items())
        if too_many or clock.monotonic() > deadline:
            differences = ", ".join(
                f"{day}: {shown.get(day, 0.0):g} on the server, {value:g} simulated"
                for day, value in wanted.items()
                if shown.get(day) != value
            )
            return shown, f"{session.username}: steps differ: {differences}"
        await asyncio.sleep(0.2)


def _proto_date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)


# --- the command line, shared with fittrack-loadgen ---


def plural(count: int, word: str, words: str = "") -> str:
    """`1 batch`, `2 batches`: the count with its word."""
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def whole_number(wanted: str, accept: Callable[[int], bool]) -> Callable[[str], int]:
    """An argparse type: an integer that `accept` takes; `wanted` says which, as in "give 1 or more"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give {wanted}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {wanted}")
        return value

    return parse


def number(wanted: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number that `accept` takes (never nan or inf)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {wanted}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {wanted}")
        return value

    return parse


ANY_WHOLE_NUMBER = whole_number("a whole number, like 42", lambda value: True)
AT_LEAST_ONE = whole_number("1 or more", lambda value: value >= 1)
A_CHANCE = number("a chance from 0 up to, not including, 1 (0.05 is 5%)", lambda value: 0 <= value < 1)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are an `error:` line and a `hint:` line, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\nhint: `{self.prog} --help` describes every option\n")


def check_server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Security:
    """The security the options and the address ask for; a usage error for an address gRPC would misread,
    or TLS files that cannot be read."""
    security = Security.from_args(args)
    try:
        split_target(args.server, security)
    except ChannelError as error:
        given = "$FITTRACK_SERVER" if args.server == os.environ.get("FITTRACK_SERVER") else "--server"
        parser.error(f"{given}: {error}")
    try:
        if split_target(args.server, security)[1].secure:
            security.credentials()
    except ChannelError as error:
        parser.error(str(error))
    return security


def report_rpc_error(error: grpc.RpcError, address: str, security: Security) -> int:
    """One `error:` line (and `hint:` lines) for a call that failed; the exit status."""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        message, hints = explain_unavailable(address, security, error.details() or "")
    else:
        message, hints = f"{error.code().name}: {error.details()}", []
    print(f"error: {message}", file=sys.stderr)
    for hint in hints:
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_FAILED


def report_failures(failures: Sequence[str], shown: int = 10) -> None:
    """What went wrong in a run, on stderr: one `error:` line, then the first few problems, indented."""
    if len(failures) == 1:
        print(f"error: {failures[0]}", file=sys.stderr)
        return
    print(f"error: the run failed, with {plural(len(failures), 'problem')}:", file=sys.stderr)
    for failure in failures[:shown]:
        print(f"  {failure}", file=sys.stderr)
    if len(failures) > shown:
        print(f"  and {len(failures) - shown:,} more (--json lists them all)", file=sys.stderr)


def _hours(text: str) -> tuple[int, int]:
    try:
        first, last = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FROM-TO, like 7-9") from None
    if not 0 <= first < last <= 24:
        raise argparse.ArgumentTypeError(f"{text!r}: hours go from 0 to 24, FROM before TO")
    return first, last


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; give YYYY-MM-DD, like 2026-11-24") from None


def days_problem(last_day: date, days: int, zone: ZoneInfo, now: datetime | None = None) -> str | None:
    """Why the server would refuse readings of these local days (None when it would not)."""
    first_day = last_day - timedelta(days=days - 1)
    start = datetime.combine(first_day, time(0), zone)
    if start < EARLIEST_READING:
        which = f"{first_day} (the first of {days} days)" if days > 1 else f"{first_day}"
        return (
            f"{which} starts before 2000-01-01 00:00 UTC, the earliest time the server accepts a reading; "
            "choose a later --date"
        )
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    if last_day > today:
        return f"{last_day} is in the future in {zone.key}; a device can only report what happened"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        prog="fittrack-simulator",
        description="Register fresh users and run a fleet of their wearables, each syncing simulated days over "
        "SyncReadings with random disconnects; then check every user's steps per day through ViewMetric.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("FITTRACK_SERVER") or "127.0.0.1:50051",
        help="HOST:PORT of the server (default: $FITTRACK_SERVER or 127.0.0.1:50051)",
    )
    add_tls_options(parser)
    parser.add_argument("--devices", type=AT_LEAST_ONE, default=3, help="devices to simulate (default 3)")
    parser.add_argument(
        "--devices-per-user",
        type=AT_LEAST_ONE,
        default=1,
        help="devices of one user: a watch, then phones that count steps in the user's pocket (default 1)",
    )
    parser.add_argument("--time-zone", default="UTC", help="IANA time zone of the users (default UTC)")
    parser.add_argument("--date", type=_day, help="last local day to simulate, YYYY-MM-DD (default: today, up to now)")
    parser.add_argument(
        "--days",
        type=whole_number("1 to 31 (one ViewMetric call checks them)", lambda value: 1 <= value <= 31),
        default=1,
        help="days to simulate, ending with --date (default 1, at most 31)",
    )
    parser.add_argument(
        "--hours", type=_hours, default=(0, 24), help="local hours of each day to sync, FROM-TO (default 0-24)"
    )
    parser.add_argument(
        "--seed", type=ANY_WHOLE_NUMBER, help="seed of the readings and the disconnects (default: random)"
    )
    parser.add_argument(
        "--batch-size",
        type=whole_number("1 to 1000", lambda value: 1 <= value <= 1000),
        default=DEFAULT_BATCH_SIZE,
        help="readings per batch (default 60)",
    )
    parser.add_argument(
        "--window", type=AT_LEAST_ONE, default=4, help="batches a device sends before awaiting acks (default 4)"
    )
    parser.add_argument(
        "--disconnect-rate",
        type=A_CHANCE,
        default=0.05,
        help="chance, per batch, that the device drops the connection after sending it (default 0.05)",
    )
    parser.add_argument(
        "--max-backoff",
        type=number("seconds above 0", lambda value: value > 0),
        default=2.0,
        help="longest wait before reconnecting, in seconds (default 2)",
    )
    parser.add_argument(
        "--ack-timeout",
        type=number("seconds above 0", lambda value: value > 0),
        default=30.0,
        help="how long a device waits for an ack before it counts the connection as broken (default 30 s)",
    )
    parser.add_argument(
        "--give-up-after",
        type=whole_number("0 or more", lambda value: value >= 0),
        default=8,
        help="failed connections in a row, without an ack, after which a device gives up (default 8)",
    )
    parser.add_argument("--no-verify", action="store_true", help="do not check the users' steps through ViewMetric")
    parser.add_argument(
        "--verify-timeout",
        type=number("seconds, 0 or more", lambda value: value >= 0),
        default=60.0,
        help="how long the steps may take to show up (default 60 s)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    try:
        zone = ZoneInfo(args.time_zone)
    except (ValueError, KeyError):
        parser.error(f"--time-zone: unknown time zone {args.time_zone!r}; give an IANA name, like Europe/Paris")
    problem = days_problem(args.date or datetime.now(zone).date(), args.days, zone)
    if problem:
        parser.error(f"--date: {problem}" if args.date else problem)
    security = check_server(parser, args)
    plan = FleetPlan(
        devices=args.devices,
        devices_per_user=args.devices_per_user,
        time_zone=args.time_zone,
        last_day=args.date,
        days=args.days,
        hours=args.hours,
        batch_size=args.batch_size,
        behaviour=SyncBehaviour(
            window=args.window,
            disconnect_rate=args.disconnect_rate,
            max_backoff=args.max_backoff,
            ack_timeout=args.ack_timeout,
            max_failures=args.give_up_after,
        ),
        seed=args.seed if args.seed is not None else random.randrange(2**31),
        verify=not args.no_verify,
        verify_timeout=args.verify_timeout,
    )
    try:
        report = asyncio.run(run_fleet(args.server, plan, security))
    except grpc.RpcError as error:
        return report_rpc_error(error, args.server, security)
    except ChannelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    print(json.dumps(report.figures()) if args.json else report.summary())
    if report.failures:
        report_failures(report.failures)
        if any(device.error for device in report.devices) and report.figures()["server_errors"].get("UNAVAILABLE"):
            print(f"hint: the devices lost the server: is it still running at {args.server}?", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
