"""Report benchmark: DownloadReport of one user's year as CSV (target: at most 1 s), and as a PDF.

It starts the embedded server as a subprocess, registers one user and uploads
a year of readings for every metric (--days local days ending yesterday, UTC;
--minutes-per-day readings per metric and day spread over it, in batches of 1,000 over
UploadReadings), then waits until the CSV download holds exactly the uploaded
daily totals: the timed files hold real stored values. Then, through the
generated stub on one connection:

- csv_median_s / csv_p95_s: DownloadReport of the --days range as CSV, from the
  call until the last chunk, over --repeat downloads; meets_target says whether
  csv_p95_s is within target_seconds (1.0);
- pdf_first_s (the server's first PDF, which imports matplotlib), pdf_median_s
  over --pdf-repeat more: the same range as a PDF with charts (no target);
- the anchor, measured in the same run on the same connection: a ViewReport of
  a month (anchor_ms, median of --repeat), with ratio_to_anchor = csv_median_s /
  the anchor's median, so figures from different machines compare; and the
  median of a health check round trip (health_ms), the transport's floor.

    python -m bench.report [--days 365] [--repeat 10] [--pdf-repeat 3] [--minutes-per-day 24]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import math
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import (
    channel_options,
    emit,
    log_in_users,
    ms,
    percentile,
    report_failure,
    start_server,
    work_directory,
)
from fittrack.generated.v1 import common_pb2, metric_pb2, metric_pb2_grpc, report_pb2, report_pb2_grpc

TARGET_SECONDS = 1.0
BATCH = 1000  # the server's default readings per batch
USER = "report-bench"
# CSV column, metric, and the value of one minute's reading (kept within the per-minute limits).
COLUMNS = (
    ("steps", common_pb2.METRIC_KIND_STEPS, lambda rnd: rnd.randint(60, 900)),
    ("calories", common_pb2.METRIC_KIND_CALORIES_BURNED, lambda rnd: rnd.randint(4, 60) / 4),
    ("distance", common_pb2.METRIC_KIND_DISTANCE, lambda rnd: rnd.randint(40, 700)),
    ("active_minutes", common_pb2.METRIC_KIND_ACTIVE_MINUTES, lambda rnd: 1),
    ("heart_rate", common_pb2.METRIC_KIND_HEART_RATE, lambda rnd: rnd.randint(55, 160)),
)
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE


def proto_date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)


def plan_year(days: int, minutes_per_day: int, last_day: date, seed: int = 7):
    """The upload's batches and the daily figures the CSV must then hold: {(day, column): value}."""
    rnd = random.Random(seed)
    readings: list[metric_pb2.Reading] = []
    expected: dict[tuple[str, str], float] = {}
    first_day = last_day - timedelta(days=days - 1)
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        # Spread evenly over the UTC day (the user's time zone).
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        spacing = 60 * (1440 // minutes_per_day)
        for column, metric, value_of in COLUMNS:
            values = [value_of(rnd) for _ in range(minutes_per_day)]
            readings.extend(
                metric_pb2.Reading(metric=metric, time=Timestamp(seconds=midnight + spacing * i), value=value)
                for i, value in enumerate(values)
            )
            expected[(day.isoformat(), column)] = sum(values) / len(values) if metric == HEART_RATE else sum(values)
    batches = [
        metric_pb2.UploadReadingsRequest(
            batch=metric_pb2.ReadingBatch(
                device_id="bench-watch", sequence=number + 1, readings=readings[start : start + BATCH]
            )
        )
        for number, start in enumerate(range(0, len(readings), BATCH))
    ]
    return first_day, batches, len(readings), expected


def csv_matches(content: bytes, expected: dict[tuple[str, str], float]) -> bool:
    """Whether every uploaded day's figures are in the file (cells have at most two decimals)."""
    rows = {row["date"]: row for row in csv.DictReader(io.StringIO(content.decode()))}
    for (day, column), value in expected.items():
        cell = rows.get(day, {}).get(column, "")
        if cell == "" or not math.isclose(float(cell), value, abs_tol=0.006):
            return False
    return True


async def download(reports, request, metadata) -> tuple[float, bytes, report_pb2.ReportFileInfo]:
    """One DownloadReport: seconds from the call until its last chunk, the file, its info."""
    started = time.perf_counter()
    call = reports.DownloadReport(request, metadata=metadata, timeout=120)
    info = None
    chunks = []
    async for response in call:
        if response.WhichOneof("part") == "info":
            info = response.info
        else:
            chunks.append(response.chunk)
    seconds = time.perf_counter() - started
    content = b"".join(chunks)
    if info is None or info.total_bytes != len(content):
        raise RuntimeError(f"the download announced {info and info.total_bytes} bytes and sent {len(content)}")
    return seconds, content, info


async def wait_stored(reports, request, metadata, expected, timeout: float) -> float:
    """Download the CSV until it holds the uploaded figures; returns the seconds it took."""
    started = time.perf_counter()
    pause = 0.02
    while True:
        _, content, _ = await download(reports, request, metadata)
        if csv_matches(content, expected):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the CSV did not hold the uploaded figures within {timeout:.0f} s")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)


async def run(options, log_dir: Path) -> dict:
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    first_day, batches, readings, expected = plan_year(options.days, options.minutes_per_day, last_day)
    figures: dict = {
        "bench": "report",
        "profile": "embedded",
        "days": options.days,
        "readings": readings,
        "repeat": options.repeat,
        "pdf_repeat": options.pdf_repeat,
    }
    span = common_pb2.DateRange(start=proto_date(first_day), end=proto_date(last_day))
    csv_request = report_pb2.DownloadReportRequest(range=span, format=report_pb2.REPORT_FORMAT_CSV)
    pdf_request = report_pb2.DownloadReportRequest(range=span, format=report_pb2.REPORT_FORMAT_PDF)
    month = report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_MONTH, anchor=proto_date(last_day))
    server = await start_server({}, log_dir)
    try:
        metadata = (await log_in_users(server.address, [USER]))[USER]
        async with grpc.aio.insecure_channel(server.address, options=channel_options(64 * 1024 * 1024)) as channel:
            metrics = metric_pb2_grpc.MetricServiceStub(channel)
            reports = report_pb2_grpc.ReportServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            started = time.perf_counter()
            summary = await metrics.UploadReadings(iter(batches), metadata=metadata, timeout=600)
            if summary.readings_accepted != readings:
                raise RuntimeError(f"{summary.readings_accepted} of {readings} readings accepted: {summary}")
            await wait_stored(reports, csv_request, metadata, expected, options.visible_timeout)
            figures["seed_s"] = round(time.perf_counter() - started, 3)

            csv_times = []
            for _ in range(options.repeat):
                seconds, content, _ = await download(reports, csv_request, metadata)
                csv_times.append(seconds)
            figures["csv_bytes"] = len(content)
            figures["csv_verified"] = csv_matches(content, expected)

            pdf_times = []
            for _ in range(options.pdf_repeat + 1):
                seconds, content, info = await download(reports, pdf_request, metadata)
                if not content.startswith(b"%PDF-") or info.content_type != "application/pdf":
                    raise RuntimeError(f"the PDF download is no PDF: {info} {content[:16]!r}")
                pdf_times.append(seconds)
            figures["pdf_bytes"] = len(content)

            anchor_times, health_times = [], []
            for _ in range(options.repeat):
                started = time.perf_counter()
                await reports.ViewReport(month, metadata=metadata, timeout=60)
                anchor_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                await health.Check(health_pb2.HealthCheckRequest(), timeout=60)
                health_times.append(time.perf_counter() - started)
        figures["server_peak_rss_mb"] = round(server.memory_mb()["VmHWM"], 1)
    finally:
        server.stop()

    csv_median = statistics.median(csv_times)
    anchor_median = statistics.median(anchor_times)
    figures["csv_median_s"] = round(csv_median, 4)
    figures["csv_p95_s"] = round(percentile(csv_times, 0.95), 4)
    figures["target_seconds"] = TARGET_SECONDS
    figures["meets_target"] = figures["csv_p95_s"] <= TARGET_SECONDS
    figures["pdf_first_s"] = round(pdf_times[0], 4)
    figures["pdf_median_s"] = round(statistics.median(pdf_times[1:]), 4) if pdf_times[1:] else None
    figures["anchor"] = "ViewReport month"
    figures["anchor_ms"] = ms(anchor_median)
    figures["ratio_to_anchor"] = round(csv_median / anchor_median, 3)
    figures["health_ms"] = ms(statistics.median(health_times))
    if not figures["csv_verified"]:
        figures["error"] = "the last CSV download did not hold the uploaded figures"
    return figures


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365, help="days of data, and of the downloads (365)")
    parser.add_argument("--minutes-per-day", type=int, default=24, help="readings per metric and day (24)")
    parser.add_argument("--repeat", type=int, default=10, help="timed CSV downloads and anchor calls (10)")
    parser.add_argument("--pdf-repeat", type=int, default=3, help="timed PDF downloads after the first one (3)")
    parser.add_argument(
        "--visible-timeout", type=float, default=120, help="seconds to wait for the upload to be stored (120)"
    )
    parser.add_argument("--log-dir", type=Path, help="keep the server's log and data under this directory")
    options = parser.parse_args(argv)
    for name in ("days", "minutes_per_day", "repeat"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if options.pdf_repeat < 0:
        parser.error("--pdf-repeat must be at least 0")
    if options.days > 3660:
        parser.error("--days must be at most 3660 (a download's limit)")
    if options.minutes_per_day > 1440:
        parser.error("--minutes-per-day must be at most 1440")
    return options


async def main(argv: list[str] | None = None) -> int:
    """Returns 0 when everything was measured, else 1 (missing the target is a figure, not a failure)."""
    options = parse(argv)
    with work_directory("bench-report", options.log_dir) as log_dir:
        try:
            figures = await run(options, log_dir)
            if "error" in figures:
                report_failure(log_dir, exception=False)
        except Exception as error:  # the line is printed even when it fails; the details go to stderr
            report_failure(log_dir)
            figures = {"bench": "report", "profile": "embedded", "error": f"{type(error).__name__}: {error}"}
    emit(figures)
    return 1 if "error" in figures else 0


def cli() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
