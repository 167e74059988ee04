"""TLS and mutual TLS on a real server: who gets through the handshake, and the CLI over TLS."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fittrack.app.config import Config
from fittrack.clients.channel import Security, secure_channel
from fittrack.clients.fleet import FleetPlan, run_fleet
from fittrack.clients.sync import SyncBehaviour
from fittrack.generated.v1 import account_pb2, account_pb2_grpc
from tests.certificates import CertificateAuthority, Issued
from tests.e2e.test_cli import Cli
from tests.support import PASSWORD, RunningServer, rpc_error

# A refused handshake fails fast; the deadline only bounds a test that would otherwise hang.
DEADLINE = 10


@pytest.fixture
def authority(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki", "fittrack")


@pytest.fixture
def stranger(tmp_path) -> CertificateAuthority:
    """Another CA, which the server and the clients have never heard of."""
    return CertificateAuthority(tmp_path / "pki", "stranger")


def start(server_config: Config, clock, authority: CertificateAuthority, client_ca: bool) -> RunningServer:
    issued = authority.server()
    config = dataclasses.replace(
        server_config,
        tls_cert_file=str(issued.cert_file),
        tls_key_file=str(issued.key_file),
        tls_client_ca_file=str(authority.cert_file) if client_ca else "",
    )
    return RunningServer(config, clock)


@pytest.fixture
def tls_server(server_config, clock, authority):
    running = start(server_config, clock, authority, client_ca=False)
    yield running
    running.stop()


@pytest.fixture
def mtls_server(server_config, clock, authority):
    running = start(server_config, clock, authority, client_ca=True)
    yield running
    running.stop()


def presenting(issued: Issued, trusting: CertificateAuthority) -> Security:
    """The options of a client that trusts `trusting` and presents `issued`."""
    return Security(ca_file=str(trusting.cert_file), cert_file=str(issued.cert_file), key_file=str(issued.key_file))


def register(address: str, security: Security, username: str) -> account_pb2.RegisterResponse:
    with secure_channel(address, security) as channel:
        request = account_pb2.RegisterRequest(username=username, password=PASSWORD)
        return account_pb2_grpc.AccountServiceStub(channel).Register(request, timeout=DEADLINE)


def health(address: str, security: Security) -> health_pb2.HealthCheckResponse:
    with secure_channel(address, security) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)


def test_a_client_that_trusts_the_servers_ca_registers_over_tls(tls_server, authority, new_username):
    username = new_username("tls")

    response = register(tls_server.address, Security(ca_file=str(authority.cert_file)), username)

    assert response.profile.username == username


def test_the_health_check_answers_over_tls(tls_server, authority):
    response = health(tls_server.address, Security(ca_file=str(authority.cert_file)))

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_a_tls_address_scheme_is_enough_to_connect_with_tls(tls_server, authority, new_username):
    response = register(
        f"grpcs://{tls_server.address}", Security(ca_file=str(authority.cert_file)), new_username("scheme")
    )

    assert response.profile.user_id


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server, new_username):
    error = rpc_error(lambda: register(tls_server.address, Security(), new_username("plain")))

    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_trust_the_servers_ca_is_refused(tls_server, stranger, new_username):
    error = rpc_error(lambda: register(tls_server.address, Security(ca_file=str(stranger.cert_file)), new_username()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_an_internal_service_with_a_certificate_from_the_client_ca_gets_through(mtls_server, authority, new_username):
    issued = authority.client("persister")
    security = presenting(issued, trusting=authority)

    assert register(mtls_server.address, security, new_username("mtls")).profile.user_id
    assert health(mtls_server.address, security).status == health_pb2.HealthCheckResponse.SERVING


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_server, authority, new_username):
    security = Security(ca_file=str(authority.cert_file))

    error = rpc_error(lambda: register(mtls_server.address, security, new_username()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_certificate_from_another_ca(mtls_server, authority, stranger, new_username):
    issued = stranger.client("impostor")
    security = presenting(issued, trusting=authority)

    error = rpc_error(lambda: register(mtls_server.address, security, new_username()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_the_cli_works_against_a_tls_server_with_its_ca_file(tls_server, authority, tmp_path, new_username):
    cli = Cli(tls_server.address, tmp_path / "config")
    username = new_username("clitls")
    ca = ["--ca-file", str(authority.cert_file)]

    cli.ok(*ca, "register", username, "--password-stdin", stdin=PASSWORD + "\n")
    cli.ok(*ca, "login", username, "--password-stdin", stdin=PASSWORD + "\n")
    shown = cli.ok("profile", "show", *ca)  # the options work after the command too
    cli.ok(*ca, "logout")

    assert username in shown


def test_the_cli_remembers_how_it_reached_the_server_at_login(tls_server, authority, tmp_path, new_username):
    cli = Cli(tls_server.address, tmp_path / "config")
    username = new_username("clitlsmemory")
    ca = ["--ca-file", str(authority.cert_file)]
    cli.ok(*ca, "register", username, "--password-stdin", stdin=PASSWORD + "\n")
    cli.ok(*ca, "login", username, "--password-stdin", stdin=PASSWORD + "\n")

    # Later commands name no TLS option: the session kept them.
    assert username in cli.ok("profile", "show")
    cli.ok("logout")


def test_the_cli_takes_its_ca_file_from_the_environment(tls_server, authority, tmp_path, new_username, monkeypatch):
    monkeypatch.setenv("FITTRACK_CA_FILE", str(authority.cert_file))
    cli = Cli(tls_server.address, tmp_path / "config")

    out = cli.ok("register", new_username("envtls"), "--password-stdin", stdin=PASSWORD + "\n")

    assert "Registered" in out


def test_the_cli_without_tls_options_says_the_server_may_need_them(tls_server, tmp_path, new_username):
    cli = Cli(tls_server.address, tmp_path / "config")

    result = cli.run("--timeout", "5", "register", new_username(), "--password-stdin", stdin=PASSWORD + "\n")

    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
    assert "--ca-file" in result.stderr


def test_the_cli_with_an_unreadable_ca_file_says_which_option_is_wrong(tls_server, tmp_path):
    cli = Cli(tls_server.address, tmp_path / "config")

    result = cli.run("--ca-file", str(tmp_path / "missing.pem"), "goals", "list")

    assert result.returncode == 2
    assert "--ca-file" in result.stderr


def test_simulated_wearables_sync_over_mutual_tls(mtls_server, authority):
    issued = authority.client("simulator")
    plan = FleetPlan(
        devices=2,
        last_day=datetime.now(UTC).date() - timedelta(days=1),
        hours=(7, 8),
        batch_size=30,
        behaviour=SyncBehaviour(disconnect_rate=0.3, base_backoff=0.02, max_backoff=0.2, ack_timeout=10.0),
        seed=3,
        verify_timeout=15,
    )

    report = asyncio.run(run_fleet(mtls_server.address, plan, presenting(issued, trusting=authority)))

    assert report.failures == []
    assert report.verified
