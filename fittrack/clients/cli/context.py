"""What every command gets: the terminal to show things on and, made on first use, the connection."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

from fittrack.clients.cli.connection import Client
from fittrack.clients.cli.errors import UsageError
from fittrack.clients.cli.terminal import Terminal
from fittrack.clients.cli.vocabulary import RelativeDay
from fittrack.generated.v1 import account_pb2


class Context:
    def __init__(self, args: argparse.Namespace, terminal: Terminal) -> None:
        self.args = args
        self.terminal = terminal
        self._client: Client | None = None
        self._profile: account_pb2.Profile | None = None

    @property
    def client(self) -> Client:
        # Made on first use, so that commands which never talk to the server (logout --local) need none.
        if self._client is None:
            self._client = Client(self.args)
        return self._client

    @property
    def connected(self) -> Client | None:
        """The connection, if a command made one."""
        return self._client

    def day(self, value: date | RelativeDay | None) -> date | None:
        """A date from the command line, with `today` and `yesterday` read in the account's time zone."""
        if value is None or isinstance(value, date):
            return value
        return value.on(self.today())

    def profile(self) -> account_pb2.Profile:
        """The account's profile, asked for once per command."""
        if self._profile is None:
            self._profile = self.client.unary(self.client.accounts.GetProfile, account_pb2.GetProfileRequest())
        return self._profile

    def zone(self) -> tzinfo:
        """Where the account lives: its days, and the times the CLI shows, are that zone's."""
        return zone_named(self.profile().time_zone) or UTC

    def today(self) -> date:
        """Today where the account lives, which is what the server's days are."""
        return datetime.now(UTC).astimezone(self.zone()).date()

    def date_range(self, first, last, up_to_today: bool = False) -> tuple[date, date]:
        """--from and --to as dates; a usage error when they are the wrong way round or, with `up_to_today`,
        when the range ends after today where the account lives (such days have nothing to report yet)."""
        if isinstance(first, date) and isinstance(last, date):
            _in_order(first, last)  # before asking the server anything
        start, end = self.day(first), self.day(last)
        _in_order(start, end)
        if up_to_today and isinstance(last, date) and end > self.today():
            raise UsageError(
                f"--to {end} is after today ({self.today()} in {self.profile().time_zone or 'UTC'}); "
                "a report holds only days that have happened",
                hint="end it today with `--to today`",
            )
        return start, end

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _in_order(start: date, end: date) -> None:
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}", hint=f"swap them: `--from {end} --to {start}`")


def local_time(stamp, zone: tzinfo | None = None) -> str:
    """A protobuf Timestamp in `zone` (default: this machine's), to the minute, with the zone's abbreviation
    (`2026-11-24 08:15 CET`), so a time is never read in the wrong zone."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    return (moment.astimezone(zone) if zone else moment.astimezone()).strftime("%Y-%m-%d %H:%M %Z")


def zone_named(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return None
