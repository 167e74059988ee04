"""Starting the processes: a bad setting or a taken address is a message and an exit code, never a traceback."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fittrack.app.config import Config
from fittrack.app.server import CannotStart, create_server
from tests.support import Clock, RunningServer, eventually, server_settings

ROOT = Path(__file__).resolve().parents[2]
# Well formed, so only the setting under test is wrong; nothing is ever connected to.
PRODUCTION = {
    "FITTRACK_PROFILE": "production",
    "FITTRACK_PG_DSN": "postgresql://fittrack@127.0.0.1:9/fittrack",
    "FITTRACK_KAFKA_BOOTSTRAP": "127.0.0.1:9",
    "FITTRACK_MONGO_URI": "mongodb://127.0.0.1:9/",
}
PROGRAMS = {
    "fittrack-server": "fittrack.app.server",
    "fittrack-persister": "fittrack.app.persister",
    "fittrack-dispatcher": "fittrack.app.dispatcher",
    "fittrack-evaluator": "fittrack.app.evaluator",
    "fittrack-migrate": "fittrack.app.migrate",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("FITTRACK_")}
    return {**clean, "FITTRACK_DATA_DIR": str(tmp_path / "var"), **settings}


def run(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The process's exit; one that starts serving instead runs into the timeout, and the test fails."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
    except grpc.RpcError:
        return False
    return status == health_pb2.HealthCheckResponse.SERVING


@contextlib.contextmanager
def running_server(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A server process serving on env's FITTRACK_LISTEN; stopped with SIGTERM after, which it must obey."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fittrack.app.server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually(lambda: serving(env["FITTRACK_LISTEN"]), bool, timeout=30)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("FITTRACK_LOG_LEVEL", "verbose", "FITTRACK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("FITTRACK_LISTEN", "nonsense", "FITTRACK_LISTEN must be host:port with port 1-65535"),
        ("FITTRACK_LISTEN", "127.0.0.1:99999", "FITTRACK_LISTEN must be host:port with port 1-65535"),
    ],
)
def test_the_server_refuses_a_malformed_setting_with_a_message_naming_it_and_exit_2(tmp_path, setting, value, message):
    result = run("fittrack.app.server", environment(tmp_path, **{setting: value}))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # Refused before anything was made.
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("FITTRACK_LOG_LEVEL", "verbose", "FITTRACK_LOG_LEVEL must be one of"),
        ("FITTRACK_PG_DSN", "host=db port=5432 nonsense", "FITTRACK_PG_DSN is not a PostgreSQL connection string"),
        ("FITTRACK_KAFKA_BOOTSTRAP", "broker1:9092,broker2", "FITTRACK_KAFKA_BOOTSTRAP must be a comma-separated list"),
        ("FITTRACK_MONGO_URI", "mongo.internal:27017", "FITTRACK_MONGO_URI is not a MongoDB connection string"),
    ],
)
def test_every_production_process_refuses_a_malformed_setting_with_a_message_and_exit_2(
    tmp_path, program, setting, value, message
):
    result = run(PROGRAMS[program], environment(tmp_path, **{**PRODUCTION, setting: value}))
    assert result.returncode == 2
    assert f"{program}: {message}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_second_server_on_a_taken_address_refuses_to_start_and_the_first_goes_on_serving(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    # Both on one data directory, as two `make run` in one checkout would be.
    env = environment(tmp_path, FITTRACK_LISTEN=address)
    with running_server(env):
        second = run("fittrack.app.server", env)
        assert second.returncode in (1, 2)
        assert f"{address} is already in use: is another Fittrack server running?" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert serving(address)


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_says_what_the_process_does_and_where_its_settings_come_from_and_starts_nothing(tmp_path, program):
    result = run(PROGRAMS[program], environment(tmp_path), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {program}")
    assert "Settings are read from the environment (FITTRACK_*)" in result.stdout
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_argument_is_refused_rather_than_ignored(tmp_path, program):
    result = run(PROGRAMS[program], environment(tmp_path), "--listen", "127.0.0.1:1")
    assert result.returncode == 2
    assert f"{program}: error: unrecognized arguments: --listen 127.0.0.1:1" in result.stderr
    assert not (tmp_path / "var").exists()


def test_a_second_server_on_the_same_data_directory_refuses_to_start_whatever_its_address(tmp_path):
    first_address, second_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with running_server(environment(tmp_path, FITTRACK_LISTEN=first_address)) as first:
        second = run("fittrack.app.server", environment(tmp_path, FITTRACK_LISTEN=second_address))
        assert second.returncode == 1
        database = tmp_path / "var" / "fittrack.sqlite3"
        assert f"the database {database} is in use by another Fittrack server (process {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert serving(first_address) and not serving(second_address)
    # The hold ends with the server: the next one starts on the same data.
    with running_server(environment(tmp_path, FITTRACK_LISTEN=second_address)):
        pass


def test_a_server_that_could_not_start_leaves_its_data_free_for_the_next_start(tmp_path):
    config = Config(**server_settings(tmp_path, listen="127.0.0.1:0"))
    unreadable = config.data_dir / "token-secret"
    unreadable.mkdir(parents=True)  # no secret can be read from a directory

    async def create():
        return create_server(config)

    with pytest.raises(CannotStart, match="cannot keep data in"):
        asyncio.run(create())
    unreadable.rmdir()
    # The same process starts again on the same data: the failed start let go of its database.
    RunningServer(config, Clock()).stop()
