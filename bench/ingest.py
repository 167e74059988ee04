"""Ingest benchmark, embedded profile: M devices sync N readings in batches of B.

Figures: end-to-end readings/s (every batch acknowledged and the totals
visible through ViewMetric), ack latency p50/p99, the server's peak RSS, and
the same devices against the bare transport anchor in the same run.

    python -m bench.ingest [--devices 20] [--readings 100000] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.anchor import start_anchor
from generated.fittrack.v1 import account_pb2, account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password"


def make_batches(devices: int, readings: int, batch_size: int, now: int) -> dict[str, list[metric_pb2.ReadingBatch]]:
    """Per device, batches of one-minute step readings going back from now.

    Each device belongs to its own user (as wearables do), so no readings merge.
    """
    per_device = readings // devices
    plan = {}
    for device in range(devices):
        device_id = f"watch-{device}"
        minutes = [now - 60 * (i + 1) for i in range(per_device)]
        plan[device_id] = [
            metric_pb2.ReadingBatch(
                device_id=device_id,
                sequence=number + 1,
                readings=[
                    metric_pb2.Reading(metric=common_pb2.METRIC_KIND_STEPS, time=Timestamp(seconds=m), value=1)
                    for m in minutes[start : start + batch_size]
                ],
            )
            for number, start in enumerate(range(0, per_device, batch_size))
        ]
    return plan


async def sync_device(stub, batches, metadata, latencies: list[float]) -> None:
    """Send batch after batch on one stream, each once the previous is acknowledged (as a wearable does)."""
    queue: asyncio.Queue = asyncio.Queue()

    async def requests():
        for batch in batches:
            queue.put_nowait(time.perf_counter())
            yield metric_pb2.SyncReadingsRequest(batch=batch)
            await acked.wait()
            acked.clear()

    acked = asyncio.Event()
    call = stub.SyncReadings(requests(), metadata=metadata)
    async for response in call:
        latencies.append(time.perf_counter() - queue.get_nowait())
        if response.ack.status != metric_pb2.BatchAck.STATUS_ACCEPTED:
            raise RuntimeError(f"batch not accepted: {response.ack}")
        acked.set()


async def drive(address: str, plan, metadata_of) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = metric_pb2_grpc.MetricServiceStub(channel)
        started = time.perf_counter()
        await asyncio.gather(
            *(sync_device(stub, batches, metadata_of(device), latencies) for device, batches in plan.items())
        )
        return time.perf_counter() - started, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_serving(address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {address} did not become healthy")
            await asyncio.sleep(0.1)


async def log_in(channel, device: str) -> tuple[tuple[str, str], ...]:
    """Register the device's owner and return their auth metadata."""
    accounts = account_pb2_grpc.AccountServiceStub(channel)
    username = f"owner-of-{device}"
    await accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))
    login = await accounts.Login(account_pb2.LoginRequest(username=username, password=PASSWORD))
    return (("authorization", f"Bearer {login.access_token}"),)


async def embedded_run(plan) -> dict:
    port = free_port()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "FITTRACK_LISTEN": address, "FITTRACK_DATA_DIR": data_dir, "FITTRACK_BCRYPT_ROUNDS": "4"}
        server = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            await wait_serving(address)
            async with grpc.aio.insecure_channel(address) as channel:
                metadata = {device: await log_in(channel, device) for device in plan}
                started = time.perf_counter()
                acked_after, latencies = await drive(address, plan, metadata.get)
                metrics = metric_pb2_grpc.MetricServiceStub(channel)
                view = metric_pb2.ViewMetricRequest(
                    metric=common_pb2.METRIC_KIND_STEPS, preset=common_pb2.RANGE_PRESET_LAST_30_DAYS
                )
                deadline = time.monotonic() + 600
                for device, batches in plan.items():
                    sent = sum(len(b.readings) for b in batches)
                    while (await metrics.ViewMetric(view, metadata=metadata[device])).total < sent:
                        if time.monotonic() > deadline:
                            raise RuntimeError("readings did not become visible within 10 minutes")
                        await asyncio.sleep(0.02)
                visible_after = time.perf_counter() - started
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"acked_s": acked_after, "visible_s": visible_after, "latencies": latencies, "rss_mb": rss}


async def anchor_run(plan) -> float:
    server, port, _ = await start_anchor()
    try:
        elapsed, _ = await drive(f"127.0.0.1:{port}", plan, lambda device: ())
    finally:
        await server.stop(None)
    return elapsed


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    options = parser.parse_args(argv)
    now = int(time.time()) // 60 * 60
    plan = make_batches(options.devices, options.readings, options.batch, now)
    total = sum(len(b.readings) for batches in plan.values() for b in batches)
    anchor_s = await anchor_run(plan)
    run = await embedded_run(plan)
    figures = {
        "bench": "ingest",
        "profile": "embedded",
        "devices": options.devices,
        "readings": total,
        "batch": options.batch,
        "readings_per_s": round(total / run["visible_s"]),
        "acked_readings_per_s": round(total / run["acked_s"]),
        "ack_p50_ms": round(percentile(run["latencies"], 0.50) * 1000, 2),
        "ack_p99_ms": round(percentile(run["latencies"], 0.99) * 1000, 2),
        "server_peak_rss_mb": round(run["rss_mb"], 1),
        "anchor_readings_per_s": round(total / anchor_s),
    }
    figures["ratio_to_anchor"] = round(figures["readings_per_s"] / figures["anchor_readings_per_s"], 4)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
