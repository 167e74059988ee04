"""A fleet of simulated devices: register users, sync their simulated days concurrently the way wearables do
(fittrack/clients/sync.py), then check through ViewMetric that every user's steps per day are exactly what was
simulated: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time as clock
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from google.type.date_pb2 import Date

from fittrack.clients.activity import STEPS, day_seed, merged_daily_totals, simulate_day, simulate_phone, within_hours
from fittrack.clients.channel import (
    PLAINTEXT,
    Security,
    aio_channel,
)
from fittrack.clients.command_line import plural
from fittrack.clients.sync import (
    BatchSource,
    DeviceStats,
    DeviceSync,
    SimulatedReading,
    SyncBehaviour,
    UserSession,
    register_users,
)
from fittrack.clients.sync_call import DEFAULT_BATCH_SIZE
from fittrack.generated.v1 import account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc


def batches_of(readings: Sequence[SimulatedReading], size: int) -> BatchSource:
    chunks = iter([readings[offset : offset + size] for offset in range(0, len(readings), size)])

    async def source() -> Sequence[SimulatedReading] | None:
        return next(chunks, None)

    return source


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
