"""bench/sustained: the highest write rate the production profile sustains, with how soon readings show.

    python -m bench.sustained [--rates 3000,6000,12000,24000,35000] [--step-seconds 60] [--devices 200]

Starts the production profile on a slice of the running services (as `make up`
does: two persisters and a server), then climbs a ladder of paced write rates,
--step-seconds at each, on the same stack. At each step:

- writes: --devices devices upload batches of --batch one-minute step readings
  (UploadReadings) at their share of the rate (bench/soak.paced_uploads);
- lag: every second, the records of the `readings` topic the persister group
  has not committed, in seconds of load at the rate;
- visibility: a probe user uploads one reading at a time and, once it is
  acknowledged, asks ViewMetric every 20 ms until its total shows it; the
  time from the acknowledgement to the view is the reading's visibility.

A step holds when its ack p99 is at most 100 ms, the lag at most 5 s of load
(both at the step's end and at its worst), and visibility p99 at most 5 s, with
no errors: the design's targets. The ladder stops at the first step that does
not hold (--all-steps climbs on, to show where each figure gives out);
`sustained_rate` is the highest rate at which every step so far held (0 when
the first did not). The
anchor, in the same run: the first rate's paced uploads for 10 s against the
bare transport (bench/anchor.py), with ratio_to_anchor = the first step's ack
p99 over the anchor's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from bench import production
from bench.common import channel_options, emit, log_in_users, percentile, raise_open_files_limit, start_anchor
from bench.soak import ANCHOR_SECONDS, paced_uploads, renew_logins, watch_lag
from fittrack.core.domain.calendar import MAX_VIEW_DAYS
from fittrack.generated.v1 import common_pb2, metric_pb2, metric_pb2_grpc

ACK_P99_MS = 100.0
LAG_SECONDS = 5.0
VISIBLE_P99_S = 5.0
PROBE_GIVE_UP_S = 60.0
PROBES_PER_SECOND = 2
MAX_PROBES = 28 * 24 * 60  # one a minute, back from the run's start: four weeks, within a view's 31 days


async def probe_visibility(
    address: str, auth: list, seconds: float, base: int, first: int
) -> tuple[list[float], int, int]:
    """Readings uploaded one at a time, each timed from its acknowledgement until ViewMetric shows it.

    Each goes to a minute of its own, going back from the minute `base` (the
    same for every step), so each adds 1 to the probe user's (UTC) total over
    the 31 days up to base's day, read just before the upload. At most PROBES_PER_SECOND: they would use up
    their four weeks of minutes in under four hours.
    Returns the latencies, how many probes were sent in all (for the next step
    to continue from), and how many never showed.
    """
    latencies: list[float] = []
    missing = 0
    sent = first
    stop_at = time.monotonic() + seconds
    last = datetime.fromtimestamp(base, UTC).date()
    first_day = last - timedelta(days=MAX_VIEW_DAYS - 1)
    view = metric_pb2.ViewMetricRequest(
        metric=common_pb2.METRIC_KIND_STEPS,
        dates=common_pb2.DateRange(
            start=Date(year=first_day.year, month=first_day.month, day=first_day.day),
            end=Date(year=last.year, month=last.month, day=last.day),
        ),
    )
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        stub = metric_pb2_grpc.MetricServiceStub(channel)
        while time.monotonic() < stop_at:
            if sent >= MAX_PROBES:
                raise RuntimeError(f"the probe has used its {MAX_PROBES} minutes: fewer or shorter steps")
            due = time.monotonic() + 1 / PROBES_PER_SECOND
            reading = metric_pb2.Reading(
                metric=common_pb2.METRIC_KIND_STEPS, time=Timestamp(seconds=base - 60 * (1 + sent)), value=1
            )
            batch = metric_pb2.ReadingBatch(device_id="probe", readings=[reading])
            request = metric_pb2.UploadReadingsRequest(batch=batch)
            sent += 1
            try:
                before = (await stub.ViewMetric(view, metadata=auth[0], timeout=10)).total
                await stub.UploadReadings(iter([request]), metadata=auth[0], timeout=30)
                acknowledged = time.perf_counter()
                while True:
                    shown = await stub.ViewMetric(view, metadata=auth[0], timeout=10)
                    if shown.total > before:
                        latencies.append(time.perf_counter() - acknowledged)
                        break
                    if time.perf_counter() - acknowledged > PROBE_GIVE_UP_S:
                        raise TimeoutError
                    await asyncio.sleep(0.02)
            except (grpc.aio.AioRpcError, TimeoutError):
                # An overloaded step's probe that failed, or never showed, counts against the step.
                missing += 1
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    return latencies, sent, missing


def judged(step: dict) -> bool:
    writes, lag, visible = step["writes"], step["lag"], step["visibility"]
    return (
        not writes["errors"]
        and writes["ack_p99_ms"] is not None
        and writes["ack_p99_ms"] <= ACK_P99_MS
        and lag["max_seconds"] <= LAG_SECONDS
        and lag["last_seconds"] <= LAG_SECONDS
        and visible["samples"] > 0
        and visible["missing"] == 0
        and visible["p99_s"] <= VISIBLE_P99_S
    )


async def one_step(
    stack, auth: list, probe_auth: list, rate: float, options, base: int, probes_sent: int
) -> tuple[dict, int]:
    step_options = argparse.Namespace(rate=rate, batch=options.batch)
    stop = asyncio.Event()
    lags = asyncio.create_task(watch_lag(stack.env, stop))
    try:
        writes, (latencies, probes_sent, missing) = await asyncio.gather(
            paced_uploads(stack.server.address, auth, step_options, options.step_seconds),
            probe_visibility(stack.server.address, probe_auth, options.step_seconds, base, probes_sent),
        )
    finally:
        stop.set()
        samples = await lags
    seconds_of = options.batch / rate  # a record is one batch of --batch readings
    step = {
        "rate": rate,
        "writes": writes,
        "lag": {
            "max_records": max(samples, default=0),
            "max_seconds": round(max(samples, default=0) * seconds_of, 2),
            "last_seconds": round((samples[-1] if samples else 0) * seconds_of, 2),
        },
        "visibility": {
            "samples": len(latencies),
            "missing": missing,
            "p50_s": round(percentile(latencies, 0.50) or 0.0, 3),
            "p99_s": round(percentile(latencies, 0.99) or 0.0, 3),
        },
    }
    step["holds"] = judged(step)
    return step, probes_sent


async def run(options, log_dir: Path) -> dict:
    rates = [float(rate) for rate in options.rates.split(",")]
    figures: dict = {
        "bench": "sustained",
        "profile": "production",
        "step_seconds": options.step_seconds,
        "devices": options.devices,
        "batch": options.batch,
        "targets": {"ack_p99_ms": ACK_P99_MS, "lag_seconds": LAG_SECONDS, "visible_p99_s": VISIBLE_P99_S},
    }
    anchor = await start_anchor(log_dir)
    try:
        anchor_auth = [(("authorization", "Bearer anchor"),)] * options.devices
        anchor_options = argparse.Namespace(rate=rates[0], batch=options.batch)
        figures["anchor"] = await paced_uploads(
            anchor.address, anchor_auth, anchor_options, min(ANCHOR_SECONDS, options.step_seconds)
        )
    finally:
        anchor.stop()
    steps = []
    async with production.production_stack(log_dir) as stack:
        address = stack.server.address
        names = [f"rate-{n}" for n in range(options.devices)]
        logins = await log_in_users(address, [*names, "rate-probe"])
        auth = [logins[name] for name in names]
        probe_auth = [logins["rate-probe"]]
        stop = asyncio.Event()
        # Access tokens last 15 minutes; ten-minute steps outlive them: log in again, as apps do.
        renewing = [
            asyncio.create_task(renew_logins(address, names, auth, stop)),
            asyncio.create_task(renew_logins(address, ["rate-probe"], probe_auth, stop)),
        ]
        probes_sent, base = 0, int(time.time()) // 60 * 60
        try:
            for rate in rates:
                step, probes_sent = await one_step(stack, auth, probe_auth, rate, options, base, probes_sent)
                steps.append(step)
                if not step["holds"] and not options.all_steps:
                    break
        finally:
            stop.set()
            await asyncio.gather(*renewing)
    figures["steps"] = steps
    held = 0.0
    for step in steps:
        if not step["holds"]:
            break
        held = step["rate"]
    figures["sustained_rate"] = held
    figures["meets_target"] = figures["sustained_rate"] >= options.target
    if figures["anchor"]["ack_p99_ms"] and steps[0]["writes"]["ack_p99_ms"]:
        figures["ratio_to_anchor"] = round(steps[0]["writes"]["ack_p99_ms"] / figures["anchor"]["ack_p99_ms"], 2)
    return figures


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="3000,6000,12000,24000,35000", help="readings/s of each step, rising")
    parser.add_argument("--step-seconds", type=float, default=60.0)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="readings per upload")
    parser.add_argument("--all-steps", action="store_true", help="climb on past a step that does not hold")
    parser.add_argument("--target", type=float, default=35_000.0, help="the design's peak, readings/s")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs under this directory")
    options = parser.parse_args(argv)
    try:
        rates = [float(rate) for rate in options.rates.split(",")]
    except ValueError:
        parser.error("--rates must be numbers separated by commas, such as 3000,6000")
    if not rates or any(rate <= 0 for rate in rates) or rates != sorted(rates):
        parser.error("--rates must be positive and rising, such as 3000,6000,12000")
    if options.step_seconds <= 0 or options.devices < 1 or options.batch < 1:
        parser.error("--step-seconds, --devices and --batch must be positive")
    raise_open_files_limit()
    figures, failed = await production.run_measured("sustained", run, options)
    emit(figures)
    return failed


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
