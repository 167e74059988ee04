"""bench/soak: the production profile under a paced write load and a read load at once, for a long while.

    python -m bench.soak [--seconds 1200] [--rate 12000] [--devices 200] [--batch 100] [--readers 8]

Starts the production profile on a slice of the running services (as `make up`
does: two persisters and a server), registers --devices users, and for
--seconds:

- writes: each device uploads a batch of --batch one-minute step readings
  (UploadReadings) at its share of --rate readings/s, its minutes going back
  from now (after 29 days they start again: a resent minute replaces itself);
- reads: --readers callers ask ViewMetric for a random device owner's last 7
  days, one call after the other;
- every second: the persister group's lag (records the `readings` topic holds
  that the group has not committed), and whether FerretDB's launcher logged a
  wedge (its watchdog's restart, var/ferretdb/ferretdb.log).

Figures: ack (UploadReadings call) p50/p99 and errors by code; view p50/p99
and errors; the largest persister lag in records and in seconds of load at
--rate; wedges. The anchor, in the same run: the same paced uploads for 10 s
against the bare transport (bench/anchor.py), and ratio_to_anchor = ack p99 /
the anchor's ack p99.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
import time
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from bench import production
from bench.common import (
    PASSWORD,
    ROOT,
    channel_options,
    emit,
    log_in_users,
    ms,
    percentile,
    raise_open_files_limit,
    start_anchor,
)
from fittrack.generated.v1 import account_pb2, account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc

FERRETDB_LOG = ROOT / "var" / "ferretdb" / "ferretdb.log"
WEDGE = "watchdog: FerretDB stopped answering"
MINUTES = 29 * 24 * 60
VIEW = metric_pb2.ViewMetricRequest(metric=common_pb2.METRIC_KIND_STEPS, preset=common_pb2.RANGE_PRESET_LAST_7_DAYS)
ANCHOR_SECONDS = 10.0
RENEW_SECONDS = 600.0


def wedges_logged() -> int:
    try:
        return FERRETDB_LOG.read_text(errors="replace").count(WEDGE)
    except OSError:
        return 0


def batch_of(device: str, first: int, size: int, now: int) -> metric_pb2.UploadReadingsRequest:
    readings = [
        metric_pb2.Reading(
            metric=common_pb2.METRIC_KIND_STEPS, time=Timestamp(seconds=now - 60 * (1 + (first + i) % MINUTES)), value=1
        )
        for i in range(size)
    ]
    return metric_pb2.UploadReadingsRequest(batch=metric_pb2.ReadingBatch(device_id=device, readings=readings))


async def paced_uploads(address: str, auth: list, options, seconds: float) -> dict:
    """Every device uploads its batches at its share of the rate until `seconds` have passed."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    interval = len(auth) * options.batch / options.rate
    stop_at = time.monotonic() + seconds
    now = int(time.time()) // 60 * 60
    channels = [grpc.aio.insecure_channel(address, options=channel_options()) for _ in range(4)]

    async def device(number: int) -> None:
        stub = metric_pb2_grpc.MetricServiceStub(channels[number % len(channels)])
        sent, due = 0, time.monotonic() + random.random() * interval
        while due < stop_at:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            started = time.perf_counter()
            try:
                request = batch_of(f"watch-{number}", sent, options.batch, now)
                # Read each time: renew_logins replaces the tokens as they near their end.
                await stub.UploadReadings(iter([request]), metadata=auth[number], timeout=30)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
            latencies.append(time.perf_counter() - started)
            sent += options.batch
            due += interval

    try:
        await asyncio.gather(*(device(n) for n in range(len(auth))))
    finally:
        for channel in channels:
            await channel.close()
    return {
        "batches": len(latencies),
        "errors": dict(errors),
        "ack_p50_ms": ms(percentile(latencies, 0.50)),
        "ack_p99_ms": ms(percentile(latencies, 0.99)),
    }


async def reads(address: str, auth: list, callers: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    stop_at = time.monotonic() + seconds

    async def caller() -> None:
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            stub = metric_pb2_grpc.MetricServiceStub(channel)
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    await stub.ViewMetric(VIEW, metadata=random.choice(auth), timeout=10)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(callers)))
    return {
        "calls": len(latencies),
        "errors": dict(errors),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


def lag(env: dict[str, str]) -> int:
    """Records of the readings topic the persister group has not committed yet."""
    bootstrap = env["FITTRACK_KAFKA_BOOTSTRAP"]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        topic = env["FITTRACK_READINGS_TOPIC"]
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        group = env["FITTRACK_PERSISTER_GROUP"]
        committed = admin.list_group_offsets({group: partitions}).get(group, {})
        return sum(end - max(0, committed[p].offset) if p in committed else end for p, end in ends.items())
    finally:
        consumer.close()
        admin.close()


async def watch_lag(env: dict[str, str], stop: asyncio.Event) -> list[int]:
    seen: list[int] = []
    while not stop.is_set():
        # A missed sample is no figure; Kafka's own outage shows in the ack errors.
        with contextlib.suppress(Exception):
            seen.append(await asyncio.to_thread(lag, env))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    return seen


async def renew_logins(address: str, names: list[str], auth: list, stop: asyncio.Event) -> None:
    """Log every device's owner in again before the access tokens (at most 15 minutes) run out, as apps do."""
    async with grpc.aio.insecure_channel(address) as channel:
        accounts = account_pb2_grpc.AccountServiceStub(channel)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RENEW_SECONDS)
            if stop.is_set():
                return
            for index, name in enumerate(names):
                login = await accounts.Login(account_pb2.LoginRequest(username=name, password=PASSWORD))
                auth[index] = (("authorization", f"Bearer {login.access_token}"),)


async def run(options, log_dir: Path) -> dict:
    figures: dict = {
        "bench": "soak",
        "profile": "production",
        "seconds": options.seconds,
        "rate": options.rate,
        "devices": options.devices,
        "batch": options.batch,
        "readers": options.readers,
    }
    anchor = await start_anchor(log_dir)
    try:
        anchor_auth = [(("authorization", "Bearer anchor"),)] * options.devices
        figures["anchor"] = await paced_uploads(
            anchor.address, anchor_auth, options, min(ANCHOR_SECONDS, options.seconds)
        )
    finally:
        anchor.stop()
    async with production.production_stack(log_dir) as stack:
        address = stack.server.address
        names = [f"soak-{n}" for n in range(options.devices)]
        auth = list((await log_in_users(address, names)).values())
        wedges_before = wedges_logged()
        stop = asyncio.Event()
        lags = asyncio.create_task(watch_lag(stack.env, stop))
        renewing = asyncio.create_task(renew_logins(address, names, auth, stop))
        writes, views = await asyncio.gather(
            paced_uploads(address, auth, options, options.seconds),
            reads(address, auth, options.readers, options.seconds),
        )
        stop.set()
        lag_samples = await lags
        await renewing
        figures.update(
            {
                "writes": writes,
                "views": views,
                "lag_max_records": max(lag_samples, default=None),
                "lag_last_records": lag_samples[-1] if lag_samples else None,
                # A record is one batch of --batch readings.
                "lag_max_seconds": round(max(lag_samples, default=0) * options.batch / options.rate, 2),
                "wedges": wedges_logged() - wedges_before,
            }
        )
    if figures["anchor"]["ack_p99_ms"]:
        figures["ratio_to_anchor"] = round(figures["writes"]["ack_p99_ms"] / figures["anchor"]["ack_p99_ms"], 2)
    return figures


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1200.0)
    parser.add_argument("--rate", type=float, default=12_000.0, help="readings per second, all devices together")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="readings per upload")
    parser.add_argument("--readers", type=int, default=8, help="ViewMetric callers")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs under this directory")
    options = parser.parse_args(argv)
    raise_open_files_limit()
    figures, failed = await production.run_measured("soak", run, options)
    emit(figures)
    if failed or "skipped" in figures:
        return failed
    return 1 if figures["wedges"] or figures["writes"]["errors"] or figures["views"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
