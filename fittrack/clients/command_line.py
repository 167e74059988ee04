"""What the simulator's and the load generator's command lines share: number types for argparse, usage errors
as an `error:` and a `hint:` line, and reporting a failed call or a failed run on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo

import grpc

from fittrack.clients.channel import (
    ChannelError,
    Security,
    explain_unavailable,
    split_target,
)

# The server refuses readings from before this instant (fittrack/core/domain/metrics.py), so days before it are refused
# here, before anything is sent.
EARLIEST_READING = datetime(2000, 1, 1, tzinfo=UTC)
EXIT_FAILED = 1
EXIT_USAGE = 2


def plural(count: int, word: str, words: str = "") -> str:
    """`1 batch`, `2 batches`: the count with its word."""
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def whole_number(wanted: str, accept: Callable[[int], bool]) -> Callable[[str], int]:
    """An argparse type: an integer that `accept` takes; `wanted` says which, as in "give 1 or more"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give {wanted}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {wanted}")
        return value

    return parse


def number(wanted: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number that `accept` takes (never nan or inf)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {wanted}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {wanted}")
        return value

    return parse


ANY_WHOLE_NUMBER = whole_number("a whole number, like 42", lambda value: True)
AT_LEAST_ONE = whole_number("1 or more", lambda value: value >= 1)
A_CHANCE = number("a chance from 0 up to, not including, 1 (0.05 is 5%)", lambda value: 0 <= value < 1)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are an `error:` line and a `hint:` line, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\nhint: `{self.prog} --help` describes every option\n")


def check_server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Security:
    """The security the options and the address ask for; a usage error for an address gRPC would misread,
    or TLS files that cannot be read."""
    security = Security.from_args(args)
    try:
        split_target(args.server, security)
    except ChannelError as error:
        given = "$FITTRACK_SERVER" if args.server == os.environ.get("FITTRACK_SERVER") else "--server"
        parser.error(f"{given}: {error}")
    try:
        if split_target(args.server, security)[1].secure:
            security.credentials()
    except ChannelError as error:
        parser.error(str(error))
    return security


def report_rpc_error(error: grpc.RpcError, address: str, security: Security) -> int:
    """One `error:` line (and `hint:` lines) for a call that failed; the exit status."""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        message, hints = explain_unavailable(address, security, error.details() or "")
    else:
        message, hints = f"{error.code().name}: {error.details()}", []
    print(f"error: {message}", file=sys.stderr)
    for hint in hints:
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_FAILED


def report_failures(failures: Sequence[str], shown: int = 10) -> None:
    """What went wrong in a run, on stderr: one `error:` line, then the first few problems, indented."""
    if len(failures) == 1:
        print(f"error: {failures[0]}", file=sys.stderr)
        return
    print(f"error: the run failed, with {plural(len(failures), 'problem')}:", file=sys.stderr)
    for failure in failures[:shown]:
        print(f"  {failure}", file=sys.stderr)
    if len(failures) > shown:
        print(f"  and {len(failures) - shown:,} more (--json lists them all)", file=sys.stderr)


def hours_range(text: str) -> tuple[int, int]:
    try:
        first, last = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FROM-TO, like 7-9") from None
    if not 0 <= first < last <= 24:
        raise argparse.ArgumentTypeError(f"{text!r}: hours go from 0 to 24, FROM before TO")
    return first, last


def iso_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; give YYYY-MM-DD, like 2026-11-24") from None


def days_problem(last_day: date, days: int, zone: ZoneInfo, now: datetime | None = None) -> str | None:
    """Why the server would refuse readings of these local days (None when it would not)."""
    first_day = last_day - timedelta(days=days - 1)
    start = datetime.combine(first_day, time(0), zone)
    if start < EARLIEST_READING:
        which = f"{first_day} (the first of {days} days)" if days > 1 else f"{first_day}"
        return (
            f"{which} starts before 2000-01-01 00:00 UTC, the earliest time the server accepts a reading; "
            "choose a later --date"
        )
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    if last_day > today:
        return f"{last_day} is in the future in {zone.key}; a device can only report what happened"
    return None
