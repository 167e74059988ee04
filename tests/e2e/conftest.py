"""Fixtures of the end-to-end tier shared by several modules."""

from __future__ import annotations

import pytest

from fittrack.generated.v1 import account_pb2
from tests.cli_runner import Cli
from tests.support import PASSWORD


@pytest.fixture
def cli(server, tmp_path) -> Cli:
    return Cli(server.address, tmp_path / "config")


@pytest.fixture
def logged_in(cli, stubs, new_username) -> str:
    """A user in UTC, registered directly and logged in with the CLI; returns the username."""
    username = new_username("cli")
    stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=PASSWORD, profile=account_pb2.ProfileFields(time_zone="UTC")
        )
    )
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    return username
