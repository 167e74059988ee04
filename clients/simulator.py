"""A simulated wearable: a realistic day of per-minute readings, synced over SyncReadings.

`simulate_day` is the reusable part (the `fittrack simulate day` command uses
it too); `main` is the `fittrack-simulator` command, which registers a few
fresh users and syncs one simulated day for each of them concurrently.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import secrets
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc

from generated.fittrack.v1 import account_pb2, account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc

STEPS = common_pb2.METRIC_KIND_STEPS
CALORIES = common_pb2.METRIC_KIND_CALORIES_BURNED
DISTANCE = common_pb2.METRIC_KIND_DISTANCE
ACTIVE_MINUTES = common_pb2.METRIC_KIND_ACTIVE_MINUTES
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE

# (metric kind, UTC seconds at the start of the minute, value): the shape of a Reading on the wire.
SimulatedReading = tuple[int, int, float]

DEFAULT_BATCH_SIZE = 60
MINUTES_PER_DAY = 24 * 60


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
        result.rejections.append(f"batch {ack.sequence}: {ack.reason}")


def reading_message(metric: int, seconds: int, value: float) -> metric_pb2.Reading:
    reading = metric_pb2.Reading(metric=metric, value=value)
    reading.time.seconds = seconds
    return reading


# --- the fittrack-simulator command ---


def _simulate_user(
    channel: grpc.Channel, username: str, zone_name: str, day: date, seed: int, batch_size: int
) -> SyncResult:
    accounts = account_pb2_grpc.AccountServiceStub(channel)
    password = secrets.token_urlsafe(18)
    accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=password, profile=account_pb2.ProfileFields(time_zone=zone_name)
        ),
        timeout=30,
    )
    login = accounts.Login(account_pb2.LoginRequest(username=username, password=password), timeout=30)
    zone = ZoneInfo(zone_name)
    now = datetime.now(UTC)
    readings = simulate_day(day, zone, seed, until=now if day >= now.astimezone(zone).date() else None)
    metadata = [("authorization", f"Bearer {login.access_token}")]
    return sync_readings(
        metric_pb2_grpc.MetricServiceStub(channel), readings, f"sim-watch-{username}", metadata, batch_size, timeout=120
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fittrack-simulator",
        description="Register fresh users and sync one simulated day of a wearable for each, concurrently.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("FITTRACK_SERVER") or "127.0.0.1:50051",
        help="HOST:PORT of the server (default: $FITTRACK_SERVER or 127.0.0.1:50051)",
    )
    parser.add_argument("--users", type=int, default=3, help="simulated users, one device each (default 3)")
    parser.add_argument("--time-zone", default="UTC", help="IANA time zone of the users (default UTC)")
    parser.add_argument(
        "--date", type=date.fromisoformat, help="local day to simulate, YYYY-MM-DD (default: today, up to now)"
    )
    parser.add_argument("--seed", type=int, help="base seed; user i uses seed + i (default: random)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="readings per batch (default 60)")
    args = parser.parse_args(argv)
    if args.users < 1 or not 1 <= args.batch_size <= 1000:
        parser.error("--users must be at least 1 and --batch-size 1 to 1000")
    try:
        zone = ZoneInfo(args.time_zone)
    except (ValueError, KeyError):
        parser.error(f"unknown time zone {args.time_zone!r}")
    day = args.date or datetime.now(zone).date()
    base_seed = args.seed if args.seed is not None else random.randrange(2**31)
    run_id = secrets.token_hex(3)
    usernames = [f"sim-{run_id}-{index}" for index in range(args.users)]

    failed = False
    with grpc.insecure_channel(args.server) as channel, ThreadPoolExecutor(max_workers=args.users) as pool:
        futures = [
            pool.submit(_simulate_user, channel, name, args.time_zone, day, base_seed + index, args.batch_size)
            for index, name in enumerate(usernames)
        ]
        for name, future in zip(usernames, futures, strict=True):
            try:
                result = future.result()
            except grpc.RpcError as error:
                failed = True
                print(f"{name}: error: {error.code().name}: {error.details()}", file=sys.stderr)
                continue
            failed = failed or result.batches_rejected > 0
            print(
                f"{name}: {result.batches_accepted} batches accepted, {result.batches_duplicate} duplicate, "
                f"{result.batches_rejected} rejected ({result.readings_accepted:,} readings) for {day}"
            )
            for rejection in result.rejections:
                print(f"  rejected {rejection}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
