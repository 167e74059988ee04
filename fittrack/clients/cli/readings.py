"""Commands that send readings: a CSV file of them, or a simulated wearable's day."""

from __future__ import annotations

import argparse
import csv
import math
import zlib
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fittrack.clients.activity import simulate_day
from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context, local_time
from fittrack.clients.cli.errors import CliError
from fittrack.clients.cli.session import Metadata
from fittrack.clients.cli.vocabulary import Metric
from fittrack.clients.sync import SimulatedReading, reading_message
from fittrack.clients.sync_call import DEFAULT_BATCH_SIZE, sync_readings
from fittrack.core.domain.metrics import EARLIEST_READING, FUTURE_TOLERANCE
from fittrack.generated.v1 import metric_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands

# What the server accepts (EARLIEST_READING, FUTURE_TOLERANCE, and each metric's per-minute limits) is checked here
# too, so that a bad row is named by its file and line, and a bad day is refused before anything is sent.
EARLIEST_DAY = EARLIEST_READING.date()
HEADER_WORDS = {"time", "timestamp", "datetime", "date", "metric", "kind", "value", "amount"}


def add_commands(commands: Commands) -> None:
    readings = commands.group("readings", "send device readings")
    push = commands.command(readings, "push", cmd_readings_push, "upload a CSV file of time,metric,value rows")
    push.add_argument("file", type=Path, metavar="FILE.csv")
    push.add_argument("--device-id", default="", help="device the readings come from (default: manual entry)")
    push.add_argument("--batch-size", type=words.batch_size, default=500, help="readings per batch, up to 1000")
    push.add_argument(
        "--sequence-start",
        type=words.whole_number(1, 2**63 - 1),
        default=0,
        metavar="N",
        help="number the batches N, N+1, ... so the server skips ones it already has (default: unnumbered)",
    )
    push.epilog = (
        f"metric is one of {', '.join(m.key for m in Metric)}; time is ISO-8601 with an offset, e.g. "
        "2026-11-24T08:15:00Z. A header row is skipped. A bad row stops the push before anything is sent. "
        "Large files may need a larger --timeout."
    )

    simulate = commands.group("simulate", "simulate a wearable")
    day = commands.command(simulate, "day", cmd_simulate_day, "sync one simulated day of a wearable")
    day.add_argument("--device-id", default="fittrack-simulator", help="simulated device (default fittrack-simulator)")
    day.add_argument("--date", type=words.day, help="local day to simulate: YYYY-MM-DD, yesterday or today (default)")
    day.add_argument("--seed", type=int, help="random seed (default: derived from the device and the day)")
    day.add_argument("--batch-size", type=words.batch_size, default=DEFAULT_BATCH_SIZE, help=argparse.SUPPRESS)


# --- CSV files ---


def parse_readings_csv(path: Path, now: datetime | None = None) -> list[SimulatedReading]:
    """Every row of a `time,metric,value` file, or an error naming the first bad line; nothing is sent before."""
    now = now or datetime.now(UTC)
    readings = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            for row in reader:
                if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                    continue
                if not readings and _is_header(row):
                    continue
                readings.append(_csv_reading(path, reader.line_num, row, now))
    except IsADirectoryError:
        raise CliError(f"{path} is a directory; name a CSV file") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise CliError(f"{path} is not a readable CSV file ({error}); nothing was sent") from None
    if not readings:
        raise CliError(f"{path} holds no readings; expected rows of time,metric,value")
    return readings


def _is_header(row: list[str]) -> bool:
    """A first row of column names (time,metric,value; Timestamp,Metric,Value; quoted or not)."""
    return all(cell.strip().strip('"').lower() in HEADER_WORDS for cell in row if cell.strip())


def _csv_reading(path: Path, line: int, row: list[str], now: datetime) -> SimulatedReading:
    def bad(reason: str) -> CliError:
        return CliError(f"{path}:{line}: {reason}; nothing was sent")

    if len(row) != 3:
        raise bad(f"expected 3 columns (time,metric,value), found {len(row)}")
    time_text, metric_text, value_text = (cell.strip() for cell in row)
    try:
        moment = datetime.fromisoformat(time_text)
    except ValueError:
        raise bad(f"time {time_text!r} is not ISO-8601, like 2026-11-24T08:15:00Z") from None
    if moment.tzinfo is None:
        raise bad(f"time {time_text!r} has no UTC offset; add Z or an offset such as +01:00")
    if moment > now + FUTURE_TOLERANCE:
        raise bad(f"time {time_text} is in the future; a device can only report what happened")
    if moment < EARLIEST_READING:
        # The instant, not its local date: 2000-01-01T00:30+01:00 is still 1999 in UTC.
        raise bad(f"time {time_text} is before 2000-01-01T00:00Z, the earliest time a reading may have")
    try:
        metric = Metric.parse(metric_text)
    except argparse.ArgumentTypeError as error:
        raise bad(str(error)) from None
    try:
        value = float(value_text)
    except ValueError:
        raise bad(f"value {value_text!r} is not a number") from None
    low, high = metric.per_minute
    if not (math.isfinite(value) and low <= value <= high):
        # Readings are per-minute amounts in the stored unit, metres for distance: named where people read another.
        unit = f" {metric.stored_unit}" if metric.stored_unit != metric.unit else ""
        raise bad(
            f"{metric.key} {value_text}{unit} is impossible in one minute; "
            f"expected {words.number(low)} to {words.number(high)}{unit}"
        )
    return metric.kind, int(moment.timestamp()), value


def cmd_readings_push(ctx: Context, args: argparse.Namespace) -> None:
    readings = parse_readings_csv(args.file)
    client = ctx.client
    batches = [
        metric_pb2.ReadingBatch(
            device_id=args.device_id,
            sequence=args.sequence_start + index if args.sequence_start else 0,
            readings=[reading_message(*r) for r in readings[offset : offset + args.batch_size]],
        )
        for index, offset in enumerate(range(0, len(readings), args.batch_size))
    ]

    def upload(auth: Metadata) -> metric_pb2.UploadSummary:
        requests = (metric_pb2.UploadReadingsRequest(batch=batch) for batch in batches)
        return client.metrics.UploadReadings(requests, metadata=auth, timeout=client.timeout)

    summary = client.call(upload)
    if args.json:
        ctx.terminal.json(summary)
        return
    zone = ctx.zone()
    skipped = (
        f", {words.plural(summary.batches_duplicate, 'duplicate batch')} skipped" if summary.batches_duplicate else ""
    )
    ctx.terminal.line(
        f"Uploaded {words.plural(summary.readings_accepted, 'reading')} in "
        f"{words.plural(summary.batches_accepted, 'batch')}{skipped}, "
        f"{local_time(summary.first_reading_time, zone)} to {local_time(summary.last_reading_time, zone)}."
    )


# --- the simulator ---


def cmd_simulate_day(ctx: Context, args: argparse.Namespace) -> None:
    client = ctx.client
    if isinstance(args.date, date) and args.date < EARLIEST_DAY:
        raise CliError(f"{args.date} is before {EARLIEST_DAY}, the earliest day the server takes readings for")
    profile = ctx.profile()
    zone = ZoneInfo(profile.time_zone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    day = args.date.on(today) if isinstance(args.date, words.RelativeDay) else args.date or today
    if day > today:
        raise CliError(f"{day} is in the future in {profile.time_zone}; a device can only report what happened")
    start = datetime.combine(day, time(), zone)
    if start < EARLIEST_READING:
        # The server's earliest is an instant: a day east of UTC starts in 1999 there.
        raise CliError(
            f"{day} in {profile.time_zone} starts at {start.astimezone(UTC):%Y-%m-%dT%H:%MZ}, before "
            "2000-01-01T00:00Z, the earliest time the server takes readings for",
            hint=f"simulate {day + timedelta(days=1)} or a later day",
        )
    # By default the seed follows the device and day, so re-simulating a day resends the same readings,
    # which replace themselves instead of changing the totals.
    seed = args.seed if args.seed is not None else zlib.crc32(f"{args.device_id}/{day}".encode())
    readings = simulate_day(day, zone, seed, until=now if day == today else None)
    result = client.call(
        lambda auth: sync_readings(
            client.metrics, readings, args.device_id, auth, args.batch_size, timeout=client.timeout
        )
    )
    if args.json:
        ctx.terminal.json({"day": day.isoformat(), "readings": len(readings), **asdict(result)})
    else:
        start = (
            f"resumed after batch {result.resumed_after} (the last one the server had)"
            if result.resumed_after
            else "sent from the first batch"
        )
        rejected = f", {result.batches_rejected:,} rejected" if result.batches_rejected else ""
        ctx.terminal.line(
            f"Simulated {day} on {args.device_id}: {words.plural(len(readings), 'reading')}, {start}. "
            f"Acks: {result.batches_accepted:,} accepted, {result.batches_duplicate:,} duplicate{rejected} "
            f"({words.plural(result.readings_accepted, 'reading')} stored)."
        )
    for rejection in result.rejections:
        ctx.terminal.warning(f"rejected {rejection}")
    if result.batches_rejected:
        raise CliError(f"{words.plural(result.batches_rejected, 'batch')} rejected; see the reasons above")
