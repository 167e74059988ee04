"""What every command gets: the terminal to show things on and, made on first use, the connection."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from clients.cli.connection import Client
from clients.cli.terminal import Terminal


class Context:
    def __init__(self, args: argparse.Namespace, terminal: Terminal) -> None:
        self.args = args
        self.terminal = terminal
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        # Made on first use, so that commands which never talk to the server (logout --local) need none.
        if self._client is None:
            self._client = Client(self.args)
        return self._client

    @property
    def address(self) -> str:
        return self._client.address if self._client else (self.args.server or "the server")

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


def now_in(zone: tzinfo | None) -> datetime:
    return datetime.now(UTC).astimezone(zone) if zone else datetime.now().astimezone()
