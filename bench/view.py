"""bench/view: ViewMetric under load on the production profile, its store holding a million day documents.

    python -m bench.view [--documents 1000000] [--users 50] [--concurrency 50] [--seconds 15]

Starts the production profile on a slice of the running services (as `make up`
does), registers --users users, and bulk-loads a year of day documents for
each of them plus as many other users' as make --documents (bench/days.py),
indexed and analyzed as the persister's upkeep and autovacuum leave them.
Then, at --concurrency callers for --seconds each:

- view: ViewMetric of the last 7 days of steps, for the registered users in turn;
- the anchor, in the same run: the health check on the same server.

Each is driven twice: by the project's own load generator (grpc.aio, one
channel per caller) and, when `make ghz` has built it, by ghz, a load tester
no one here wrote (github.com/bojand/ghz). Targets: the view's p99 at most
50 ms, and its calls/s at least 30% of the health check's (ratio_to_anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import MongoClient

from bench import production
from bench.common import ROOT, channel_options, emit, log_in_users, ms, percentile
from bench.days import DAYS_PER_USER, load, settle, user_ids
from fittrack.core.adapters.mongo_layout import COLLECTION
from fittrack.generated.v1 import account_pb2, account_pb2_grpc, common_pb2, metric_pb2, metric_pb2_grpc

P99_TARGET_MS = 50.0
RATIO_TARGET = 0.30
GHZ = ROOT / "var" / "bin" / "ghz"
VIEW = metric_pb2.ViewMetricRequest(metric=common_pb2.METRIC_KIND_STEPS, preset=common_pb2.RANGE_PRESET_LAST_7_DAYS)


async def drive(address: str, call, concurrency: int, seconds: float) -> dict:
    """`call(stub_channel, n)` from `concurrency` callers, each on its own channel, for `seconds`."""
    took: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    stop_at = time.monotonic() + seconds

    async def caller(number: int) -> None:
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            n = number
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    await call(channel, n)
                except grpc.aio.AioRpcError as error:
                    errors[f"{error.code().name}: {error.details()}"] += 1
                took.append(time.perf_counter() - started)
                n += concurrency

    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "calls": len(took),
        "errors": sum(errors.values()),
        **({"error_kinds": dict(errors)} if errors else {}),
        "calls_per_s": round(len(took) / elapsed, 1),
        "p50_ms": ms(percentile(took, 0.50)),
        "p99_ms": ms(percentile(took, 0.99)),
    }


def write_protoset(path: Path) -> Path:
    """The contract and the health service as a FileDescriptorSet, from the generated modules.

    ghz asks for server reflection's v1alpha, which this grpcio serves as v1 only; a protoset needs neither.
    """
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file) -> None:
        if file.name in files:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        files[file.name] = proto

    add(metric_pb2.DESCRIPTOR)
    add(health_pb2.DESCRIPTOR)
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString())
    return path


def ghz(
    address: str, protoset: Path, method: str, data: dict, metadata: dict, concurrency: int, seconds: float
) -> dict | None:
    """The same load from ghz; None when `make ghz` has not built it."""
    if not GHZ.exists():
        return None
    result = subprocess.run(
        [
            str(GHZ),
            "--insecure",
            "--protoset",
            str(protoset),
            "--call",
            method,
            "--data",
            json.dumps(data),
            "--metadata",
            json.dumps(metadata),
            "--concurrency",
            str(concurrency),
            "--connections",
            str(concurrency),
            "--duration",
            f"{seconds}s",
            "--format",
            "json",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if result.returncode != 0:
        return {"error": (result.stderr or result.stdout).strip()[-300:]}
    report = json.loads(result.stdout)
    latencies = {entry["percentage"]: entry["latency"] / 1e6 for entry in report.get("latencyDistribution") or []}
    # Calls still in flight when the duration ends fail with "transport is closing" or "the client
    # connection is closing": ghz closes its connections then; the server did not fail them.
    errors = {
        error: count
        for error, count in (report.get("errorDistribution") or {}).items()
        if "transport is closing" not in error and "client connection is closing" not in error
    }
    return {
        "calls": report["count"],
        "errors": sum(errors.values()),
        **({"error_kinds": errors} if errors else {}),
        "calls_per_s": round(report["rps"], 1),
        "p50_ms": round(latencies.get(50, 0.0), 2),
        "p99_ms": round(latencies.get(99, 0.0), 2),
    }


def prepare_store(env: dict[str, str], users: list[str], documents: int) -> int:
    """Load the users' years and the filler's, then index and analyze as production would have; how many."""
    today = datetime.now(UTC).date()
    client = MongoClient(env["FITTRACK_MONGO_URI"], serverSelectionTimeoutMS=5000)
    database = env["FITTRACK_MONGO_DATABASE"]
    try:
        loaded = load(client[database][COLLECTION], users, today)
        filler = max(0, -(-(documents - loaded) // DAYS_PER_USER))
        loaded += load(client[database][COLLECTION], user_ids(filler, "filler"), today)
    finally:
        client.close()
    settle(env["FITTRACK_FERRETDB_PG_DSN"], database)
    return loaded


async def run(options, log_dir) -> dict:
    figures: dict = {
        "bench": "view",
        "profile": "production",
        "concurrency": options.concurrency,
        "seconds": options.seconds,
    }
    async with production.production_stack(log_dir, persisters=1) as stack:
        address = stack.server.address
        auth = list((await log_in_users(address, [f"view-{n}" for n in range(options.users)])).values())
        async with grpc.aio.insecure_channel(address) as channel:
            accounts = account_pb2_grpc.AccountServiceStub(channel)
            ids = [
                (await accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=metadata)).user_id
                for metadata in auth
            ]
        started = time.monotonic()
        figures["documents"] = await asyncio.to_thread(prepare_store, stack.env, ids, options.documents)
        figures["load_s"] = round(time.monotonic() - started, 1)

        async def view(channel, n: int) -> None:
            reply = await metric_pb2_grpc.MetricServiceStub(channel).ViewMetric(VIEW, metadata=auth[n % len(auth)])
            assert len(reply.days) == 7, reply

        async def health(channel, n: int) -> None:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())

        await drive(address, view, options.concurrency, 2)  # warm-up: connections, caches, plans
        figures["view"] = await drive(address, view, options.concurrency, options.seconds)
        figures["anchor"] = "grpc.health.v1.Health/Check on the same server"
        figures["health"] = await drive(address, health, options.concurrency, options.seconds)
        token = dict(auth[0])["authorization"]
        request = {"metric": "METRIC_KIND_STEPS", "preset": "RANGE_PRESET_LAST_7_DAYS"}
        protoset = write_protoset(log_dir / "fittrack.protoset")
        ghz_view = ghz(
            address,
            protoset,
            "fittrack.v1.MetricService/ViewMetric",
            request,
            {"authorization": token},
            options.concurrency,
            options.seconds,
        )
        if ghz_view is not None:
            figures["ghz_view"] = ghz_view
            figures["ghz_health"] = ghz(
                address, protoset, "grpc.health.v1.Health/Check", {}, {}, options.concurrency, options.seconds
            )
    view, anchor = figures["view"], figures["health"]
    figures["ratio_to_anchor"] = round(view["calls_per_s"] / anchor["calls_per_s"], 3)
    figures["targets"] = {"p99_ms": P99_TARGET_MS, "ratio_to_anchor": RATIO_TARGET}
    figures["meets_target"] = view["p99_ms"] <= P99_TARGET_MS and figures["ratio_to_anchor"] >= RATIO_TARGET
    if "ghz_view" in figures and "error" not in figures["ghz_view"] and "error" not in figures["ghz_health"]:
        figures["ghz_ratio_to_anchor"] = round(
            figures["ghz_view"]["calls_per_s"] / figures["ghz_health"]["calls_per_s"], 3
        )
        figures["ghz_meets_target"] = (
            figures["ghz_view"]["p99_ms"] <= P99_TARGET_MS and figures["ghz_ratio_to_anchor"] >= RATIO_TARGET
        )
    return figures


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1_000_000, help="day documents in the store")
    parser.add_argument("--users", type=int, default=50, help="registered users whose views are timed")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs under this directory")
    options = parser.parse_args(argv)
    figures, failed = await production.run_measured("view", run, options)
    emit(figures)
    return failed


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
