"""Commands about goals: add, list, update, delete, and progress towards one."""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
from rich.text import Text

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context
from fittrack.clients.cli.errors import CliError, UsageError, see_help
from fittrack.clients.cli.terminal import message_dict
from fittrack.clients.cli.vocabulary import Metric
from fittrack.generated.v1 import goal_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands

_TARGET = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(km|m)?\s*$", re.IGNORECASE)


def add_commands(commands: Commands) -> None:
    goals = commands.group("goals", "daily and weekly targets")
    metric_help = ", ".join(m.key for m in Metric if m.goal_allowed)
    add = commands.command(goals, "add", cmd_goals_add, "add a goal")
    add.add_argument("--metric", type=Metric.parse_goal, required=True, metavar="METRIC", help=metric_help)
    add.add_argument("--period", choices=words.PERIODS, required=True)
    add.add_argument(
        "--target", type=target, required=True, help="amount to reach per period; distance in km (or 5000m)"
    )
    add.add_argument("--no-notify", action="store_true", help="no nudges or 'goal reached' for this goal")
    commands.command(goals, "list", cmd_goals_list, "list goals").add_argument(
        "--all", action="store_true", help="include inactive goals"
    )
    update = commands.command(goals, "update", cmd_goals_update, "change a goal's target or turn it on or off")
    update.add_argument("goal_id", metavar="GOAL_ID")
    update.add_argument("--target", type=target, help="new amount per period; distance in km (or 5000m)")
    update.add_argument("--active", choices=("yes", "no"))
    update.add_argument("--notify", choices=("yes", "no"), help="notifications about this goal")
    commands.command(goals, "delete", cmd_goals_delete, "delete a goal").add_argument("goal_id", metavar="GOAL_ID")
    progress = commands.command(goals, "progress", cmd_goals_progress, "progress towards one goal, or every active one")
    progress.add_argument("goal_id", metavar="GOAL_ID", nargs="?", help="the goal (default: every active goal)")
    progress.add_argument("--date", type=words.day, help="a day in the period to measure (default today)")


class Target(float):
    """A target as typed. Distance is in km, as the CLI shows it, unless it says `m` (`5000m`)."""

    unit: str = ""
    typed: str = ""

    def stored_for(self, metric: Metric, period: str) -> float:
        """The amount in the server's unit, within what the server takes for a goal of `metric` and `period`."""
        if self.unit and self.unit not in (metric.unit, metric.stored_unit):
            raise UsageError(f"{self.unit} is a unit of distance, not of {metric.key}")
        # Typed without a unit, an amount is in the unit the CLI shows (km); with the stored one (m), as stored.
        scale = 1 if self.unit == metric.stored_unit else metric.domain.stored_per_shown
        stored = float(self) * scale
        ceiling = metric.goal_ceiling(period)
        if stored > ceiling:
            # In the unit it was typed in: "1,000 km; at most 500 km", never "1,000,000; at most 500,000 m".
            unit = self.unit or metric.unit
            raise UsageError(
                f"a {period} {metric.key} target of {words.number(float(self))} {unit} is beyond what a person "
                f"can do; give at most {words.number(ceiling / scale)} {unit}"
            )
        return stored


def target(text: str) -> Target:
    match = _TARGET.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount; give a number such as 10000, or 5km")
    value = Target(match.group(1).replace(",", "").replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    value.unit = (match.group(2) or "").lower()
    value.typed = text.strip()
    return value


def describe(goal: goal_pb2.Goal) -> str:
    metric = Metric.of_kind(goal.metric)
    name = metric.key if metric else "?"
    amount = metric.amount(goal.target) if metric else words.number(goal.target)
    return f"{words.PERIOD_NAMES.get(goal.period, '?')} {name} {amount}"


def _status(goal: goal_pb2.Goal) -> Text:
    if not goal.active:
        return Text("inactive", style="dim")
    if not goal.notify:
        return Text("active, no notifications", style="yellow")
    return Text("active", style="green")


def cmd_goals_add(ctx: Context, args: argparse.Namespace) -> None:
    period = words.PERIODS[args.period]
    request = goal_pb2.CreateGoalRequest(
        metric=args.metric.kind, period=period, target=args.target.stored_for(args.metric, args.period)
    )
    if args.no_notify:
        request.notify = False
    try:
        goal = ctx.client.unary(ctx.client.goals.CreateGoal, request)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        listing = ctx.client.unary(ctx.client.goals.ListGoals, goal_pb2.ListGoalsRequest(include_inactive=True))
        same = [goal for goal in listing.goals if (goal.metric, goal.period) == (args.metric.kind, period)]
        if not same:
            raise error from None
        # One goal per metric and period: the way on is to change the one there is, so show the command.
        existing = same[0]
        command = f"fittrack goals update {existing.goal_id} --target {shlex.quote(args.target.typed)}"
        state = "" if existing.active else ", inactive"
        raise CliError(
            f"you already have a {args.period} {args.metric.key} goal, {existing.goal_id} "
            f"({args.metric.amount(existing.target)}{state})",
            hint=f"change it with `{command}{'' if existing.active else ' --active yes'}`",
        ) from None
    if args.json:
        ctx.terminal.json(goal)
    else:
        quiet = "" if goal.notify else ", no notifications"
        ctx.terminal.line(f"Added goal {goal.goal_id}: {describe(goal)}{quiet}")


def cmd_goals_list(ctx: Context, args: argparse.Namespace) -> None:
    request = goal_pb2.ListGoalsRequest(include_inactive=args.all)
    response = ctx.client.unary(ctx.client.goals.ListGoals, request)
    if args.json:
        ctx.terminal.json(response)
        return
    if not response.goals:
        ctx.terminal.line("No goals yet; add one with `fittrack goals add`.")
        return
    rows = []
    for goal in response.goals:
        metric = Metric.of_kind(goal.metric)
        rows.append(
            (
                goal.goal_id,
                words.PERIOD_NAMES.get(goal.period, "?"),
                metric.key if metric else "?",
                metric.amount(goal.target) if metric else words.number(goal.target),
                _status(goal),
            )
        )
    ctx.terminal.table(("ID", "PERIOD", "METRIC", "TARGET", "STATUS"), rows, right=(3,), whole=(0,))


def cmd_goals_update(ctx: Context, args: argparse.Namespace) -> None:
    if args.target is None and args.active is None and args.notify is None:
        raise UsageError(
            "nothing to update: give --target, --active and/or --notify", hint=see_help("fittrack goals update")
        )
    request = goal_pb2.UpdateGoalRequest(goal_id=args.goal_id)
    if args.target is not None:
        # The amount's unit depends on the goal's metric, which the request does not carry.
        current = _find(ctx, args.goal_id)
        if current is None:
            raise no_such_goal(args.goal_id)
        period = words.PERIOD_NAMES.get(current.period, "daily")
        request.target = args.target.stored_for(Metric.of_kind(current.metric) or Metric.STEPS, period)
    if args.active is not None:
        request.active = args.active == "yes"
    if args.notify is not None:
        request.notify = args.notify == "yes"
    with goal_named(args.goal_id):
        goal = ctx.client.unary(ctx.client.goals.UpdateGoal, request)
    if args.json:
        ctx.terminal.json(goal)
    else:
        state = "" if goal.active else ", inactive"
        state += "" if goal.notify else ", no notifications"
        ctx.terminal.line(f"Updated goal {goal.goal_id}: {describe(goal)}{state}")


def no_such_goal(goal_id: str) -> CliError:
    return CliError(f"you have no goal {goal_id!r}", hint="list them with `fittrack goals list --all`")


@contextlib.contextmanager
def goal_named(goal_id: str) -> Iterator[None]:
    """A call about one goal; the server not knowing it is told as `goals update` tells it, with the way to the IDs."""
    try:
        yield
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise no_such_goal(goal_id) from None
        raise


def _find(ctx: Context, goal_id: str) -> goal_pb2.Goal | None:
    """The goal, to read its metric when a target comes with a unit."""
    listing = ctx.client.unary(ctx.client.goals.ListGoals, goal_pb2.ListGoalsRequest(include_inactive=True))
    return next((goal for goal in listing.goals if goal.goal_id == goal_id), None)


def cmd_goals_delete(ctx: Context, args: argparse.Namespace) -> None:
    with goal_named(args.goal_id):
        response = ctx.client.unary(ctx.client.goals.DeleteGoal, goal_pb2.DeleteGoalRequest(goal_id=args.goal_id))
    if args.json:
        ctx.terminal.json(response)
    else:
        ctx.terminal.line(f"Deleted goal {args.goal_id}.")


def cmd_goals_progress(ctx: Context, args: argparse.Namespace) -> None:
    if args.goal_id:
        ids = [args.goal_id]
    else:
        listing = ctx.client.unary(ctx.client.goals.ListGoals, goal_pb2.ListGoalsRequest())
        ids = [goal.goal_id for goal in listing.goals if goal.active]
    progresses = []
    for goal_id in ids:
        request = goal_pb2.GetGoalProgressRequest(goal_id=goal_id)
        if args.date:
            request.date.CopyFrom(words.proto_date(ctx.day(args.date)))
        with goal_named(goal_id):
            progresses.append(ctx.client.unary(ctx.client.goals.GetGoalProgress, request))
    if args.json:
        if args.goal_id:
            ctx.terminal.json(progresses[0])
        else:
            ctx.terminal.json({"progress": [message_dict(progress) for progress in progresses]})
        return
    if not progresses:
        ctx.terminal.line("No active goals; add one with `fittrack goals add`.")
    for index, progress in enumerate(progresses):
        if index:
            ctx.terminal.line()
        show_progress(ctx, progress)


def show_progress(ctx: Context, progress: goal_pb2.GoalProgress) -> None:
    goal = progress.goal
    metric = Metric.of_kind(goal.metric) or Metric.STEPS
    start, end = words.day_of(progress.period_start), words.day_of(progress.period_end)
    span = start.isoformat() if start == end else f"{start} to {end}"
    ctx.terminal.line(f"Goal {goal.goal_id}: {describe(goal)}", style="bold")
    ctx.terminal.line(
        f"{span}: {metric.amount(progress.current)} of {metric.amount(goal.target)} ({progress.fraction:.0%})"
    )
    if progress.met:
        ctx.terminal.line("Goal met.", style="green")
    else:
        pace = "ahead of" if progress.current >= progress.expected_by_now else "behind"
        ctx.terminal.line(
            f"{metric.amount(progress.remaining)} to go; {pace} pace "
            f"({metric.amount(progress.expected_by_now)} expected by now)."
        )
