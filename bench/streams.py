"""Streams benchmark: S concurrent SyncReadings streams held open on one server process (embedded profile).

Every stream is a device of its own: it says hello, sends one small batch and
waits for its ack, then stays open. Users hold --per-user streams each (the
server's default limit is 8 per user), so there are S / per-user users. Once
all streams are open it reads the server's RSS, times a health check and a
ViewMetric while they are open, and closes them. The same streams are then
held on the bare transport anchor (bench/anchor.py in its own process) for
ratio_to_anchor = server_rss_mb / anchor_rss_mb. One JSON line:

    {"bench": "streams", "streams": ..., "server_rss_mb": ..., "anchor_rss_mb": ..., "ratio_to_anchor": ...,
     "open_s": ..., "health_ms": ..., ...}

    python -m bench.streams [--streams 5000] [--per-user 8] [--per-channel 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import (
    Process,
    channel_options,
    emit,
    log_in_users,
    memory_mb,
    ms,
    raise_open_files_limit,
    report_failure,
    start_anchor,
    start_server,
    work_directory,
)
from fittrack.generated.v1 import common_pb2, metric_pb2, metric_pb2_grpc

Ack = metric_pb2.BatchAck
VIEW = metric_pb2.ViewMetricRequest(metric=common_pb2.METRIC_KIND_STEPS, preset=common_pb2.RANGE_PRESET_TODAY)
TARGET_RSS_MB = 1024
PROBES = 5


@dataclass
class Held:
    """Open streams on one server, and the timings taken while they were open."""

    calls: list = field(default_factory=list)
    channels: list = field(default_factory=list)
    open_s: float = 0.0


def small_batch(device_id: str, readings: int, now: int) -> metric_pb2.SyncReadingsRequest:
    return metric_pb2.SyncReadingsRequest(
        batch=metric_pb2.ReadingBatch(
            device_id=device_id,
            sequence=1,
            readings=[
                metric_pb2.Reading(metric=common_pb2.METRIC_KIND_STEPS, time=Timestamp(seconds=now - 60 * i), value=1)
                for i in range(readings)
            ],
        )
    )


async def open_stream(stub, device_id: str, metadata, batch_readings: int, now: int):
    """Hello, one small batch, its ack; returns the call, still open."""
    call = stub.SyncReadings(metadata=metadata)
    await call.write(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device_id)))
    welcome = await call.read()
    if welcome is grpc.aio.EOF or welcome.WhichOneof("message") != "welcome":
        raise RuntimeError(f"{device_id}: no welcome in answer to the hello ({welcome})")
    await call.write(small_batch(device_id, batch_readings, now))
    answer = await call.read()
    if answer is grpc.aio.EOF or answer.ack.status != Ack.STATUS_ACCEPTED:
        raise RuntimeError(f"{device_id}: the batch was not accepted ({answer})")
    return call


async def hold_streams(address: str, streams: int, per_user: int, per_channel: int, metadata: dict, options) -> Held:
    """Open `streams` streams spread over connections of `per_channel` streams each, at most
    `options.open_concurrency` of them opening at a time."""
    held = Held()
    held.channels = [
        grpc.aio.insecure_channel(address, options=channel_options()) for _ in range(math.ceil(streams / per_channel))
    ]
    stubs = [metric_pb2_grpc.MetricServiceStub(channel) for channel in held.channels]
    now = int(time.time()) // 60 * 60
    opening = asyncio.Semaphore(options.open_concurrency)

    async def one(number: int):
        user, device = divmod(number, per_user)
        async with opening:
            return await open_stream(
                stubs[number // per_channel], f"watch-{device}", metadata.get(f"holder-{user}", ()), options.batch, now
            )

    started = time.perf_counter()
    try:
        held.calls = await asyncio.gather(*(one(number) for number in range(streams)))
    except BaseException:
        for channel in held.channels:
            await channel.close()
        raise
    held.open_s = time.perf_counter() - started
    return held


async def release(held: Held, timeout: float = 60) -> float:
    """End every stream from the client's side, wait for the server to end it too; returns the seconds it took."""
    started = time.perf_counter()

    async def close(call) -> None:
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:
            pass

    try:
        await asyncio.wait_for(asyncio.gather(*(close(call) for call in held.calls)), timeout)
    finally:
        for channel in held.channels:
            await channel.close()
    return time.perf_counter() - started


async def probe_latency(address: str, metadata) -> tuple[float, float]:
    """Median seconds of a health check and of a ViewMetric on a new connection while the streams are open."""
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        await channel.channel_ready()
        health = health_pb2_grpc.HealthStub(channel)
        metrics = metric_pb2_grpc.MetricServiceStub(channel)
        health_times, view_times = [], []
        for _ in range(PROBES):
            started = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            health_times.append(time.perf_counter() - started)
            if metadata:
                started = time.perf_counter()
                await metrics.ViewMetric(VIEW, metadata=metadata, timeout=30)
                view_times.append(time.perf_counter() - started)
    return statistics.median(health_times), statistics.median(view_times) if view_times else 0.0


async def measure(server: Process, streams: int, options, metadata: dict) -> dict:
    idle = server.memory_mb()
    held = await hold_streams(server.address, streams, options.per_user, options.per_channel, metadata, options)
    try:
        loaded = server.memory_mb()
        health_s, view_s = await probe_latency(server.address, metadata.get("holder-0"))
    finally:
        close_s = await release(held)
    return {
        "idle": idle,
        "loaded": loaded,
        "open_s": held.open_s,
        "health_s": health_s,
        "view_s": view_s,
        "close_s": close_s,
    }


async def run(options, log_dir: Path) -> dict:
    users = math.ceil(options.streams / options.per_user)
    anchor = await start_anchor(log_dir)
    try:
        anchor_figures = await measure(anchor, options.streams, options, {})
    finally:
        anchor.stop()
    # The per-user stream limit is set to what the benchmark uses, in case the server's default changes.
    server = await start_server({"FITTRACK_MAX_STREAMS_PER_USER": str(options.per_user)}, log_dir)
    try:
        metadata = await log_in_users(server.address, [f"holder-{user}" for user in range(users)])
        figures = await measure(server, options.streams, options, metadata)
    finally:
        server.stop()
    server_rss = figures["loaded"]["VmRSS"]
    anchor_rss = anchor_figures["loaded"]["VmRSS"]
    return {
        "bench": "streams",
        "profile": "embedded",
        "streams": options.streams,
        "users": users,
        "channels": math.ceil(options.streams / options.per_channel),
        "server_rss_mb": round(server_rss, 1),
        "server_peak_rss_mb": round(figures["loaded"]["VmHWM"], 1),
        "server_idle_rss_mb": round(figures["idle"]["VmRSS"], 1),
        "server_kb_per_stream": round((server_rss - figures["idle"]["VmRSS"]) * 1024 / options.streams, 1),
        "within_1gib": figures["loaded"]["VmHWM"] <= TARGET_RSS_MB,
        "anchor_rss_mb": round(anchor_rss, 1),
        "anchor_peak_rss_mb": round(anchor_figures["loaded"]["VmHWM"], 1),
        "anchor_kb_per_stream": round((anchor_rss - anchor_figures["idle"]["VmRSS"]) * 1024 / options.streams, 1),
        "ratio_to_anchor": round(server_rss / anchor_rss, 2),
        "open_s": round(figures["open_s"], 3),
        "anchor_open_s": round(anchor_figures["open_s"], 3),
        "health_ms": ms(figures["health_s"]),
        "view_metric_ms": ms(figures["view_s"]),
        "anchor_health_ms": ms(anchor_figures["health_s"]),
        "close_s": round(figures["close_s"], 3),
        "client_peak_rss_mb": round(memory_mb(os.getpid())["VmHWM"], 1),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=5000, help="streams to hold open (5000)")
    parser.add_argument("--per-user", type=int, default=8, help="streams per user (8, the server's default limit)")
    parser.add_argument("--per-channel", type=int, default=100, help="streams per client connection (100)")
    parser.add_argument("--batch", type=int, default=10, help="readings in each stream's one batch (10)")
    parser.add_argument("--open-concurrency", type=int, default=500, help="streams opening at a time (500)")
    parser.add_argument("--log-dir", type=Path, help="keep the processes' logs and data under this directory")
    options = parser.parse_args(argv)
    for name in ("streams", "per_user", "per_channel", "batch", "open_concurrency"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return options


async def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    raise_open_files_limit()
    with work_directory("bench-streams", options.log_dir) as log_dir:
        try:
            figures = await run(options, log_dir)
        except Exception as error:  # still one line; the details go to stderr
            report_failure(log_dir)
            figures = {"bench": "streams", "streams": options.streams, "error": f"{type(error).__name__}: {error}"}
    emit(figures)
    return 1 if "error" in figures else 0


def cli() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
