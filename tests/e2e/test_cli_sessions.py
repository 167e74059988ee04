"""`fittrack` sessions: where they are kept, and that none is left valid on a server with nobody holding it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import stat
from contextlib import closing
from datetime import timedelta

import grpc
import psycopg2
import pytest

from fittrack.generated.v1 import account_pb2
from tests.cli_runner import Cli
from tests.e2e.test_cli_first_hour import access_still_works, assert_explained
from tests.support import PASSWORD, RunningServer, Stubs


def sessions_held(server, user_id: str) -> int:
    """How many sessions, ended or not, the server's account database holds for the user."""
    query = "SELECT count(*) FROM sessions WHERE user_id = {}"
    if server.config.profile == "production":
        with closing(psycopg2.connect(server.config.pg_dsn)) as connection, connection.cursor() as cursor:
            cursor.execute(query.format("%s"), (user_id,))
            return cursor.fetchone()[0]
    with closing(sqlite3.connect(server.config.database_path)) as connection:
        return connection.execute(query.format("?"), (user_id,)).fetchone()[0]


def test_a_login_whose_session_cannot_be_stored_is_refused_before_it_reaches_the_server(
    cli, server, stubs, new_username
):
    username = new_username("nowhere")
    registered = stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))
    cli.config_home.parent.mkdir(parents=True, exist_ok=True)
    cli.config_home.write_text("a file where the config directory should be")

    result = cli.run("login", username, "--password-stdin", stdin=PASSWORD + "\n")

    assert_explained(result, 1, "cannot write the session to", "XDG_CONFIG_HOME")
    # Not even a session ended at once: the login never reached the server.
    assert sessions_held(server, registered.profile.user_id) == 0


def test_logging_in_as_someone_else_ends_the_previous_session_on_the_server(cli, logged_in, stubs, new_username):
    first_token = json.loads(cli.session_file.read_text())["access_token"]
    other = new_username("other")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=other, password=PASSWORD))

    cli.ok("login", other, "--password-stdin", stdin=PASSWORD + "\n")

    assert not access_still_works(stubs, first_token)
    assert json.loads(cli.session_file.read_text())["username"] == other


def test_logging_in_again_ends_the_replaced_session(cli, logged_in, stubs):
    first_token = json.loads(cli.session_file.read_text())["access_token"]
    cli.ok("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")
    second_token = json.loads(cli.session_file.read_text())["access_token"]
    assert not access_still_works(stubs, first_token)
    assert access_still_works(stubs, second_token)


def test_while_the_server_is_down_status_says_who_is_logged_in_here_and_logout_keeps_the_session(
    server_config, clock, tmp_path
):
    server = RunningServer(server_config, clock)
    cli = Cli(server.address, tmp_path / "config")
    cli.ok("register", "leaver", "--password-stdin", "--time-zone", "UTC", stdin=PASSWORD + "\n")
    cli.ok("login", "leaver", "--password-stdin", stdin=PASSWORD + "\n")
    server.stop()

    status = cli.run("status")
    assert_explained(status, 1, f"no Fittrack server answers at {server.address}")
    assert status.stdout.startswith(
        f"Logged in to {server.address} as leaver, as stored here; the server could not be reached to check.\n"
    ), status.stdout
    assert re.search(r"session file\s+\S+session.json\n", status.stdout), status.stdout
    unchecked = json.loads(cli.run("status", "--json").stdout)
    assert (unchecked["username"], unchecked["checked"]) == ("leaver", False)

    refused = cli.run("logout")
    assert_explained(refused, 1, "cannot reach", "fittrack logout --local")
    assert cli.session_file.exists()

    forgot = cli.run("logout", "--local")
    assert forgot.returncode == 0 and "Forgot the session of leaver" in forgot.stdout
    assert "stays valid on the server" in forgot.stderr
    assert not cli.session_file.exists()


def test_a_session_forgotten_while_its_server_was_down_is_ended_by_the_next_login_that_reaches_it(
    server_config, clock, tmp_path, new_username
):
    server = RunningServer(server_config, clock)
    cli = Cli(server.address, tmp_path / "config")
    username = new_username("away")
    cli.ok("register", username, "--password-stdin", "--time-zone", "UTC", stdin=PASSWORD + "\n")
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    forgotten_token = json.loads(cli.session_file.read_text())["access_token"]
    server.stop()

    forgot = cli.run("logout", "--local")
    assert f"the next `fittrack login` that reaches {server.address} ends it there" in forgot.stderr
    kept = cli.config_home / "fittrack" / "forgotten-sessions.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # it holds tokens

    # The same server back at the same address, with the same data.
    server = RunningServer(dataclasses.replace(server_config, listen=server.address), clock)
    stubs = Stubs.connect(server.address)
    try:
        assert access_still_works(stubs, forgotten_token)  # --local asked nothing of the server
        cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
        assert not access_still_works(stubs, forgotten_token)
        assert not kept.exists()
    finally:
        stubs.channel.close()
        server.stop()


def test_a_damaged_forgotten_session_entry_is_skipped_and_logging_in_still_works(cli, logged_in):
    stored = json.loads(cli.session_file.read_text())
    kept = cli.config_home / "fittrack" / "forgotten-sessions.json"
    damaged = [{**stored, "access_token_expires_at": "soon"}, {**stored, "access_token_expires_at": "2026-01-01"}]
    kept.write_text(json.dumps(damaged))
    assert "Logged in as" in cli.ok("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")


def test_a_refused_token_after_the_session_ended_says_so_once_with_the_command_to_log_in_again(cli, logged_in, stubs):
    token = json.loads(cli.session_file.read_text())["access_token"]
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=[("authorization", f"Bearer {token}")])
    result = cli.run("goals", "list")
    assert_explained(result, 1, "session", f"hint: log in again with `fittrack login {logged_in}`")
    assert "UNAUTHENTICATED" not in result.stderr
    assert result.stderr.count("log in again") == 1, result.stderr


def test_status_says_who_is_logged_in_where_and_checks_the_session_with_the_server(cli, logged_in, stubs):
    shown = cli.ok("status")
    assert shown.startswith(f"Logged in to {cli.address} as {logged_in}.\n")
    assert re.search(r"connection\s+plaintext\n", shown)
    token = json.loads(cli.session_file.read_text())["access_token"]
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=[("authorization", f"Bearer {token}")])
    assert_explained(cli.run("status"), 1, "session", f"fittrack login {logged_in}")
    cli.ok("logout", "--local")
    assert_explained(cli.run("status"), 2, "you are not logged in", "fittrack login USERNAME")


def test_a_damaged_session_file_is_named_and_logging_in_again_replaces_it(cli, logged_in):
    cli.session_file.write_text("{not json")
    assert_explained(cli.run("goals", "list"), 2, f"the session file {cli.session_file} cannot be used", "login")
    assert "Logged in as" in cli.ok("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")
    stored = json.loads(cli.session_file.read_text())
    # A key a newer fittrack wrote is ignored rather than locking this one out.
    cli.session_file.write_text(json.dumps({**stored, "added_by_a_newer_version": 1}))
    assert "No goals yet" in cli.ok("goals", "list")
    cli.session_file.write_text(json.dumps({**stored, "access_token_expires_at": "2026-01-01T00:00:00"}))
    assert_explained(cli.run("goals", "list"), 2, "access_token_expires_at has no UTC offset")
    cli.ok("logout", "--local")
    assert not cli.session_file.exists()


def test_a_refresh_never_takes_over_another_users_session_stored_meanwhile(cli, logged_in, server, stubs, new_username):
    from argparse import Namespace

    from fittrack.clients.cli.connection import Client
    from fittrack.clients.cli.session import Session

    alice = json.loads(cli.session_file.read_text())
    bob = new_username("bob")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=bob, password=PASSWORD))
    cli.ok("login", bob, "--password-stdin", stdin=PASSWORD + "\n")  # ends alice's session on the server
    os.environ["XDG_CONFIG_HOME"] = str(cli.config_home)
    try:
        client = Client(
            Namespace(server=server.address, timeout=5, tls=False, ca_file=None, cert_file=None, key_file=None)
        )
        # A process still holding alice's session, whose access token has run out, as a watch would.
        client.session = Session(**{**alice, "access_token_expires_at": "2000-01-01T00:00:00+00:00"})
        server.clock.advance(timedelta(hours=2))
        with pytest.raises(grpc.RpcError) as refused:
            client.unary(client.accounts.GetProfile, account_pb2.GetProfileRequest())
        client.close()
    finally:
        del os.environ["XDG_CONFIG_HOME"]
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert json.loads(cli.session_file.read_text())["username"] == bob
