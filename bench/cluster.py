"""Cluster benchmark: each fault's figures, then the cluster's ingest rate beside one node's, in one run.

One JSON line per fault (bench/faults.py): readings sent, acknowledged, missing and counted twice; the
share of unary calls that succeeded while the fault lasted; how long after the fault everything answered
again; how long after the heal `cluster.py status` was healthy. Then one line for ingest: the same
devices and readings through the cluster's three balancers and through one server with two persisters on
`make services` (the single-node production profile), with ratio_to_single_node.

    python -m bench.cluster [--faults all|NAME,...] [--devices 24] [--readings 96000] [--batch 200]
                            [--window 8] [--no-ingest]

Needs root (the cluster's network namespaces); starts the cluster when it is not running and stops it
after, and needs `make services` for the single-node figure.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import sys
import time
from pathlib import Path

from bench import production
from bench.common import emit, log_in_users, ms, percentile, work_directory
from bench.faults import FAULTS, TARGET, cannot_run, cluster_running, run_fault
from bench.ingest import Device, drive, plan_devices, wait_visible


def _log(message: str) -> None:
    print(f"[bench.cluster] {message}", file=sys.stderr, flush=True)


def named_faults(text: str) -> list[str]:
    if text == "all":
        return list(FAULTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAULTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"no fault named {', '.join(unknown) or text!r}; known: {', '.join(FAULTS)}")
    return names


async def ingest(address: str, plan: list[Device], options) -> dict:
    """Register the plan's users, sync every device, wait until ViewMetric shows every reading."""
    metadata = await log_in_users(address, [device.username for device in plan])
    started = time.perf_counter()
    acked = await drive(address, plan, metadata, options.window, channels=len(plan))
    total = sum(device.readings for device in plan)
    visible, shown = await wait_visible(address, plan, metadata, timeout=120 + total * 0.005)
    seconds = time.perf_counter() - started
    return {
        "readings_per_s": round(total / seconds) if visible else None,
        "acked_readings_per_s": round(total / acked.seconds),
        "ack_p99_ms": ms(percentile(acked.latencies, 0.99)),
        **({} if visible else {"error": f"{shown} of {total} readings visible"}),
    }


def fresh(plan: list[Device]) -> list[Device]:
    """The plan with usernames of its own: the cluster keeps its accounts from one run to the next."""
    prefix = secrets.token_hex(3)
    return [dataclasses.replace(device, username=f"ingest-{prefix}-{n}") for n, device in enumerate(plan)]


async def ingest_figures(options, log_dir: Path) -> dict:
    plan = plan_devices(options.devices, options.readings, options.batch, int(time.time()))
    figures: dict = {"bench": "cluster", "ingest": True, "devices": options.devices, "readings": options.readings}
    _log("ingest through the cluster's balancers")
    cluster = await ingest(TARGET, fresh(plan), options)
    figures.update({f"cluster_{name}": value for name, value in cluster.items()})
    if reason := production.unavailable():
        figures["single_node_skipped"] = reason
        return figures
    _log("ingest through one server (make services)")
    async with production.production_stack(log_dir, persisters=2) as stack:
        single = await ingest(stack.server.address, fresh(plan), options)
    figures.update({f"single_node_{name}": value for name, value in single.items()})
    if cluster["readings_per_s"] and single["readings_per_s"]:
        figures["ratio_to_single_node"] = round(cluster["readings_per_s"] / single["readings_per_s"], 3)
    return figures


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=named_faults, default=list(FAULTS), help="all, or names separated by commas")
    parser.add_argument("--devices", type=int, default=24)
    parser.add_argument("--readings", type=int, default=96_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--no-ingest", dest="ingest", action="store_false", help="only the faults")
    parser.add_argument("--log-dir", type=Path, help="keep the single-node processes' logs here")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    if reason := cannot_run():
        emit({"bench": "cluster", "skipped": reason})
        return 0
    failed = 0
    with cluster_running():
        for name in options.faults:
            try:
                emit({"bench": "cluster", **await run_fault(FAULTS[name], log=_log)})
            except Exception as error:  # noqa: BLE001 - one JSON line per fault, whatever happens
                emit({"bench": "cluster", "fault": name, "error": f"{type(error).__name__}: {error}"})
                failed = 1
        if options.ingest:
            with work_directory("bench-cluster", options.log_dir) as log_dir:
                emit(await ingest_figures(options, log_dir))
    return failed


def cli() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
