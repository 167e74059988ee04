"""`fittrack metrics view`: one metric, day by day."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context
from fittrack.clients.cli.errors import UsageError
from fittrack.clients.cli.terminal import sparkline
from fittrack.clients.cli.vocabulary import Metric
from fittrack.generated.v1 import common_pb2, metric_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands


def add_commands(commands: Commands) -> None:
    metrics = commands.group("metrics", "view metrics")
    view = commands.command(metrics, "view", cmd_metrics_view, "one metric, day by day")
    view.add_argument("metric", type=Metric.parse, metavar="METRIC", help=", ".join(m.key for m in Metric))
    span = view.add_mutually_exclusive_group()
    span.add_argument("--today", action="store_true", help="today (the default)")
    span.add_argument("--week", action="store_true", help="the last 7 days")
    span.add_argument("--month", action="store_true", help="the last 30 days")
    span.add_argument("--from", dest="from_date", type=words.day, help="first day, with --to (at most 31 days)")
    view.add_argument("--to", dest="to_date", type=words.day, help="last day, with --from")


def view_range(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    if args.from_date or args.to_date:
        if not (args.from_date and args.to_date):
            raise UsageError("--from and --to go together")
        start, end = ctx.date_range(args.from_date, args.to_date)
        return {"dates": common_pb2.DateRange(start=words.proto_date(start), end=words.proto_date(end))}
    if args.week:
        return {"preset": common_pb2.RANGE_PRESET_LAST_7_DAYS}
    if args.month:
        return {"preset": common_pb2.RANGE_PRESET_LAST_30_DAYS}
    return {"preset": common_pb2.RANGE_PRESET_TODAY}


def cmd_metrics_view(ctx: Context, args: argparse.Namespace) -> None:
    metric: Metric = args.metric
    request = metric_pb2.ViewMetricRequest(metric=metric.kind, **view_range(ctx, args))
    view = ctx.client.unary(ctx.client.metrics.ViewMetric, request)
    if args.json:
        ctx.terminal.json(view)
        return
    out = ctx.terminal
    out.line(f"{metric.heading}, {words.day_of(view.start)} to {words.day_of(view.end)}", style="bold")
    columns = ("DATE", metric.unit.upper(), "MIN", "MAX") if metric.averaged else ("DATE", metric.unit.upper())
    rows = []
    for day in view.days:
        if not day.minutes_with_data:
            rows.append((words.day_of(day.date).isoformat(), "-", "-", "-")[: len(columns)])
            continue
        row = [words.day_of(day.date).isoformat(), metric.amount(day.value, unit=False)]
        if metric.averaged:
            row += [metric.amount(day.min, unit=False), metric.amount(day.max, unit=False)]
        rows.append(row)
    out.table(columns, rows, right=range(1, len(columns)))
    values = [day.value if day.minutes_with_data else None for day in view.days]
    if len(values) > 1:
        # Totals are read from zero; heart rate only makes sense between its own lowest and highest.
        # A day without data is a dot, never a zero.
        out.line(sparkline(values, floor=None if metric.averaged else 0))
    with_data = f"{view.days_with_data} of {words.plural(len(view.days), 'day')} with data"
    if not view.days_with_data:
        out.line(f"No {metric.key.replace('_', ' ')} data in these days.")
    elif metric.averaged:
        out.line(
            f"min {metric.amount(view.min, unit=False)} / avg {metric.amount(view.average, unit=False)} / "
            f"max {metric.amount(view.max)} ({with_data})"
        )
    else:
        out.line(
            f"total {metric.amount(view.total)}, average {metric.amount(view.average)} per day with data ({with_data})"
        )
    if len(view.sources) > 1:
        # Why the total is not the devices' sum: each minute counts once (see the merge policy).
        what = "average" if metric.averaged else "own total"
        out.line(f"By source ({what}, before merging):")
        out.table(
            ("SOURCE", metric.unit.upper(), "MINUTES"),
            [
                (source.source, metric.amount(source.value, unit=False), f"{source.minutes_with_data:,}")
                for source in view.sources
            ],
            right=(1, 2),
        )
