"""What every command gets: the terminal to show things on and, made on first use, the connection."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

from clients.cli.connection import Client
from clients.cli.terminal import Terminal
from clients.cli.vocabulary import RelativeDay
from generated.fittrack.v1 import account_pb2


class Context:
    def __init__(self, args: argparse.Namespace, terminal: Terminal) -> None:
        self.args = args
        self.terminal = terminal
        self._client: Client | None = None
        self._today: date | None = None

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

    def today(self) -> date:
        """Today where the account lives, which is what the server's days are."""
        if self._today is None:
            profile = self.client.unary(self.client.accounts.GetProfile, account_pb2.GetProfileRequest())
            self._today = datetime.now(UTC).astimezone(zone_named(profile.time_zone) or UTC).date()
        return self._today

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def local_time(stamp, zone: tzinfo | None = None) -> str:
    """A protobuf Timestamp in `zone` (default: this machine's), to the minute."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    return (moment.astimezone(zone) if zone else moment.astimezone()).strftime("%Y-%m-%d %H:%M")


def zone_named(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return None
