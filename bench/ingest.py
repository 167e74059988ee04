"""Ingest benchmark: M devices sync N readings in batches of B over SyncReadings, per profile.

Each device belongs to its own user (as wearables do), opens one stream, says
hello, and sends its batches keeping up to W of them in flight before it waits
for acks. Figures, one JSON line per profile (embedded always, production when
its services are up, else a line saying why it was skipped):

- readings_per_s: readings over the time until every batch was acknowledged
  and every user's ViewMetric steps total equals what their device sent;
- acked_readings_per_s: the same readings over the time until the last ack;
- ack_p50_ms / ack_p99_ms: from sending a batch to receiving its ack;
- server_peak_rss_mb: the server process's VmHWM (persister processes apart);
- anchor_*: the same client and devices against the bare transport anchor
  (bench/anchor.py, its own process) in the same run, and
  ratio_to_anchor = readings_per_s / anchor_readings_per_s.
- with --telemetry both: the run above has telemetry off, and the same devices are run again against a fresh
  server (and persisters) with telemetry on (TELEMETRY_ON: FITTRACK_METRICS_LISTEN, its endpoint scraped
  once a second meanwhile). `telemetry_on` holds that run's figures, and telemetry_ratio =
  on readings_per_s / off readings_per_s (telemetry_acked_ratio, the same for the acks): the overhead.
  --telemetry on measures only the run with it on.

    python -m bench.ingest [--devices 100] [--readings 300000] [--batch 100] [--window 8]
                           [--profile all|embedded|production] [--telemetry off|on|both]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench import production
from bench.common import (
    Process,
    channel_options,
    emit,
    free_port,
    log_in_users,
    ms,
    percentile,
    raise_open_files_limit,
    report_failure,
    start_anchor,
    start_server,
    work_directory,
)
from fittrack.generated.v1 import common_pb2, metric_pb2, metric_pb2_grpc

Ack = metric_pb2.BatchAck
VIEW = metric_pb2.ViewMetricRequest(metric=common_pb2.METRIC_KIND_STEPS, preset=common_pb2.RANGE_PRESET_LAST_30_DAYS)
# Readings are one per minute going back from now, and must all fall inside ViewMetric's last 30 days.
MAX_MINUTES_PER_DEVICE = 29 * 24 * 60
POLLING = 8  # ViewMetric calls at a time while waiting for the readings to become visible
SCRAPE_SECONDS = 1.0  # as often as a Prometheus scrapes at its most eager


@dataclass(frozen=True)
class Telemetry:
    """The settings of one side of the comparison: for the server, and for each worker process."""

    server_env: dict[str, str]
    worker_env: dict[str, str]
    metrics_port: int | None = None  # the server's endpoint, scraped during the run

    @property
    def on(self) -> bool:
        return bool(self.server_env)


TELEMETRY_OFF = Telemetry({}, {})


def telemetry_on() -> Telemetry:
    """Everything that turns telemetry on. Tracing's setting goes here too, so the comparison measures both."""
    port = free_port()
    return Telemetry(
        server_env={"FITTRACK_METRICS_LISTEN": f"127.0.0.1:{port}"},
        # Several persisters share these settings: port 0 gives each its own.
        worker_env={"FITTRACK_METRICS_LISTEN": "127.0.0.1:0"},
        metrics_port=port,
    )


@dataclass
class Device:
    device_id: str
    username: str
    requests: list[metric_pb2.SyncReadingsRequest]
    readings: int


def plan_devices(devices: int, readings: int, batch_size: int, now: int) -> list[Device]:
    """Per device, SyncReadings requests of one-minute step readings (value 1) going back from now."""
    per_device = readings // devices
    if per_device < 1:
        raise SystemExit(f"--readings {readings} gives {devices} devices nothing to send")
    if per_device > MAX_MINUTES_PER_DEVICE:
        raise SystemExit(f"at most {MAX_MINUTES_PER_DEVICE} readings per device: use more devices")
    plan = []
    for number in range(devices):
        device_id = f"watch-{number}"
        minutes = [now - 60 * (i + 1) for i in range(per_device)]
        requests = [
            metric_pb2.SyncReadingsRequest(
                batch=metric_pb2.ReadingBatch(
                    device_id=device_id,
                    sequence=sequence,
                    readings=[
                        metric_pb2.Reading(metric=common_pb2.METRIC_KIND_STEPS, time=Timestamp(seconds=m), value=1)
                        for m in minutes[start : start + batch_size]
                    ],
                )
            )
            for sequence, start in enumerate(range(0, per_device, batch_size), start=1)
        ]
        plan.append(Device(device_id, f"owner-of-{device_id}", requests, per_device))
    return plan


@dataclass
class Drive:
    """What one pass of all devices measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def sync_device(stub, device: Device, metadata, window: int, latencies: list[float]) -> None:
    """One device's stream: hello, then its batches, at most `window` of them waiting for an ack."""
    call = stub.SyncReadings(metadata=metadata)
    await call.write(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device.device_id)))
    welcome = await call.read()
    if welcome is grpc.aio.EOF or welcome.WhichOneof("message") != "welcome":
        raise RuntimeError(f"{device.device_id}: no welcome in answer to the hello ({welcome})")
    sent: collections.deque[float] = collections.deque()
    slots = asyncio.Semaphore(window)

    async def write() -> None:
        for request in device.requests:
            await slots.acquire()
            sent.append(time.perf_counter())
            await call.write(request)
        await call.done_writing()

    writer = asyncio.create_task(write())
    try:
        for request in device.requests:
            response = await call.read()
            if response is grpc.aio.EOF:
                raise RuntimeError(f"{device.device_id}: the stream ended before every batch was acknowledged")
            latencies.append(time.perf_counter() - sent.popleft())
            slots.release()
            ack = response.ack
            if ack.status != Ack.STATUS_ACCEPTED or ack.sequence != request.batch.sequence:
                raise RuntimeError(f"{device.device_id}: batch {request.batch.sequence} not accepted: {ack}")
        await writer
        if await call.read() is not grpc.aio.EOF:
            raise RuntimeError(f"{device.device_id}: more answers than batches")
    finally:
        writer.cancel()


async def drive(address: str, plan: list[Device], metadata: dict, window: int, channels: int) -> Drive:
    """All devices at once, spread round-robin over `channels` connections; timed from the first stream
    opening until the last ack."""
    opened = [grpc.aio.insecure_channel(address, options=channel_options()) for _ in range(channels)]
    try:
        stubs = [metric_pb2_grpc.MetricServiceStub(channel) for channel in opened]
        result = Drive()
        started = time.perf_counter()
        await asyncio.gather(
            *(
                sync_device(
                    stubs[number % channels], device, metadata.get(device.username, ()), window, result.latencies
                )
                for number, device in enumerate(plan)
            )
        )
        result.seconds = time.perf_counter() - started
        return result
    finally:
        for channel in opened:
            await channel.close()


async def wait_visible(address: str, plan: list[Device], metadata: dict, timeout: float) -> tuple[bool, int]:
    """Poll the users' ViewMetric steps totals until each equals what their device sent, or the deadline passes.

    A few users at a time (POLLING), so the polling itself hardly loads the server it waits for: a user
    whose total is complete is not asked again. Returns whether everything became visible and how many
    readings were visible at the end.
    """
    deadline = time.monotonic() + timeout
    expected = {device.username: device.readings for device in plan}
    seen = dict.fromkeys(expected, 0)
    pending = list(expected)
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        metrics = metric_pb2_grpc.MetricServiceStub(channel)

        async def total(username: str) -> int:
            view = await metrics.ViewMetric(VIEW, metadata=metadata[username], timeout=30)
            return round(view.total)

        pause = 0.01
        while pending:
            head = pending[:POLLING]
            for username, visible in zip(head, await asyncio.gather(*(total(name) for name in head)), strict=True):
                if visible > expected[username]:
                    raise RuntimeError(f"{username} sees {visible} steps but their device sent {expected[username]}")
                seen[username] = visible
            complete = {name for name in head if seen[name] == expected[name]}
            pending = [name for name in pending if name not in complete]
            if not pending or time.monotonic() >= deadline:
                break
            if complete:
                pause = 0.01
                continue
            # Short pauses at first (the embedded profile catches up within moments), longer for a slow store.
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 0.25)
    return not pending, sum(seen.values())


def visibility_timeout(readings: int, requested: float | None) -> float:
    """Generous but finite: a minute plus 5 ms per reading (200 readings/s; FerretDB manages thousands)."""
    return requested if requested is not None else 60 + readings * 0.005


async def run_profile(profile: str, plan: list[Device], options, log_dir: Path) -> dict:
    total = sum(device.readings for device in plan)
    figures = {
        "bench": "ingest",
        "profile": profile,
        "devices": len(plan),
        "readings": total,
        "batch": options.batch,
        "window": options.window,
        "channels": options.channels,
    }
    anchor = await start_anchor(log_dir)
    try:
        anchor_drive = await drive(anchor.address, plan, {}, options.window, options.channels)
        anchor_memory = anchor.memory_mb()
    finally:
        anchor.stop()

    sides = {"off": [TELEMETRY_OFF], "on": [telemetry_on()], "both": [TELEMETRY_OFF, telemetry_on()]}
    runs = []
    for telemetry in sides[options.telemetry]:
        run_dir = log_dir / ("telemetry-on" if telemetry.on else "telemetry-off")
        run_dir.mkdir(exist_ok=True)
        runs.append(await measure(profile, plan, options, run_dir, telemetry))
    figures.update(runs[0])
    figures["anchor_readings_per_s"] = round(total / anchor_drive.seconds)
    figures["anchor_ack_p50_ms"] = ms(percentile(anchor_drive.latencies, 0.50))
    figures["anchor_ack_p99_ms"] = ms(percentile(anchor_drive.latencies, 0.99))
    figures["anchor_peak_rss_mb"] = round(anchor_memory["VmHWM"], 1)
    figures["ratio_to_anchor"] = (
        round(figures["readings_per_s"] / figures["anchor_readings_per_s"], 4) if figures["readings_per_s"] else None
    )
    figures["acked_ratio_to_anchor"] = round(figures["acked_readings_per_s"] / figures["anchor_readings_per_s"], 4)
    if len(runs) == 2:
        off, on = runs
        figures["telemetry_on"] = on
        figures["telemetry_ratio"] = (
            round(on["readings_per_s"] / off["readings_per_s"], 4)
            if on["readings_per_s"] and off["readings_per_s"]
            else None
        )
        figures["telemetry_acked_ratio"] = round(on["acked_readings_per_s"] / off["acked_readings_per_s"], 4)
        if "error" in on and "error" not in figures:
            figures["error"] = f"telemetry on: {on['error']}"
    return figures


async def measure(profile: str, plan: list[Device], options, log_dir: Path, telemetry: Telemetry) -> dict:
    """One run of all devices against a fresh server (and persisters), telemetry on or off as given."""
    total = sum(device.readings for device in plan)
    figures: dict = {"telemetry": "on" if telemetry.on else "off"}
    async with serving(profile, log_dir, options, telemetry) as (server, persisters):
        metadata = await log_in_users(server.address, [device.username for device in plan])
        scraping = asyncio.create_task(scrape_every_second(telemetry.metrics_port)) if telemetry.on else None
        try:
            started = time.perf_counter()
            acked = await drive(server.address, plan, metadata, options.window, options.channels)
            acked.seconds = time.perf_counter() - started
            timeout = visibility_timeout(total, options.visible_timeout)
            visible, visible_readings = await wait_visible(server.address, plan, metadata, timeout)
            visible_s = time.perf_counter() - started
        finally:
            if scraping is not None:
                scraping.cancel()
        if scraping is not None:
            scrapes = await asyncio.gather(scraping, return_exceptions=True)
            figures["scrapes"] = scrapes[0] if isinstance(scrapes[0], int) else 0
            # The exporter's own count of what this run sent: a check that the figures measured were recorded.
            final = await asyncio.to_thread(scrape_text, telemetry.metrics_port)
            figures["metrics_accepted_readings"] = sample_value(
                final, 'fittrack_ingest_readings_total{outcome="accepted"}'
            )
        server_memory = server.memory_mb()
        persister_peaks = [process.memory_mb()["VmHWM"] for process in persisters if process.popen.poll() is None]

    figures["readings_per_s"] = round(total / visible_s) if visible else None
    figures["acked_readings_per_s"] = round(total / acked.seconds)
    figures["ack_p50_ms"] = ms(percentile(acked.latencies, 0.50))
    figures["ack_p99_ms"] = ms(percentile(acked.latencies, 0.99))
    figures["server_peak_rss_mb"] = round(server_memory["VmHWM"], 1)
    if persister_peaks:
        figures["persisters"] = len(persister_peaks)
        figures["persister_peak_rss_mb"] = round(max(persister_peaks), 1)
    figures["acked_s"] = round(acked.seconds, 3)
    figures["visible_s"] = round(visible_s, 3)
    figures["visible_readings"] = visible_readings
    if not visible:
        figures["error"] = (
            f"timeout: {visible_readings} of {total} readings visible through ViewMetric "
            f"{timeout:.0f} s after the last ack (--visible-timeout)"
        )
    return figures


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample_value(text: str, sample: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def scrape_every_second(port: int) -> int:
    """GET /metrics once a second, as Prometheus would, until cancelled; how many scrapes were made."""
    scrapes = 0
    try:
        while True:
            await asyncio.to_thread(scrape_text, port)
            scrapes += 1
            await asyncio.sleep(SCRAPE_SECONDS)
    except asyncio.CancelledError:
        return scrapes


@contextlib.asynccontextmanager
async def serving(
    profile: str, log_dir: Path, options, telemetry: Telemetry = TELEMETRY_OFF
) -> AsyncIterator[tuple[Process, list[Process]]]:
    """The profile's server and, for production, its persisters on a slice of the services, for one run."""
    if profile == "production":
        stack = production.production_stack(log_dir, options.persisters, telemetry.server_env, telemetry.worker_env)
        async with stack as run:
            yield run.server, run.persisters
        return
    server = await start_server(telemetry.server_env, log_dir)
    try:
        yield server, []
    finally:
        server.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100, help="concurrent devices, one user each (100)")
    parser.add_argument("--readings", type=int, default=300_000, help="readings in all, split over the devices")
    parser.add_argument("--batch", type=int, default=100, help="readings per batch (100)")
    parser.add_argument("--window", type=int, default=8, help="batches in flight per stream before waiting (8)")
    parser.add_argument("--channels", type=int, default=4, help="client connections the devices share (4)")
    parser.add_argument("--persisters", type=int, default=2, help="production persister processes (2)")
    parser.add_argument(
        "--profile", choices=("all", "embedded", "production"), default="all", help="which profiles to run (all)"
    )
    parser.add_argument(
        "--visible-timeout",
        type=float,
        default=None,
        help="seconds to wait after the last ack for the readings to show in ViewMetric (60 + 5 ms per reading)",
    )
    parser.add_argument(
        "--telemetry",
        choices=("off", "on", "both"),
        default="off",
        help="metrics (and tracing) off, on, or both in turn to measure their overhead (off)",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the processes' logs and data under this directory")
    options = parser.parse_args(argv)
    for name in ("devices", "readings", "batch", "window", "channels", "persisters"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1")
    options.channels = min(options.channels, options.devices)
    return options


async def main(argv: list[str] | None = None) -> int:
    """Runs the profiles; returns 0 when every profile that ran measured everything, else 1."""
    options = parse(argv)
    raise_open_files_limit()
    now = int(time.time()) // 60 * 60
    plan = plan_devices(options.devices, options.readings, options.batch, now)
    profiles = ["embedded", "production"] if options.profile == "all" else [options.profile]
    failed = False
    for profile in profiles:
        if profile == "production" and (reason := production.unavailable()):
            emit({"bench": "ingest", "profile": "production", "skipped": reason})
            continue
        with work_directory(f"bench-ingest-{profile}", options.log_dir) as log_dir:
            try:
                figures = await run_profile(profile, plan, options, log_dir)
                if "error" in figures:
                    report_failure(log_dir, exception=False)
            except Exception as error:  # one line per profile even when it fails; the details go to stderr
                report_failure(log_dir)
                figures = {"bench": "ingest", "profile": profile, "error": f"{type(error).__name__}: {error}"}
        emit(figures)
        failed = failed or "error" in figures
    return 1 if failed else 0


def cli() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
