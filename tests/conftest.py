import itertools

import pytest

from core.config import Config
from tests.support import Clock, RunningServer, Stubs, register_and_login

_names = itertools.count()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server_config(tmp_path) -> Config:
    """Embedded profile with fast bcrypt, data in the test's own directory."""
    return Config(listen="127.0.0.1:0", data_dir=tmp_path / "var", bcrypt_rounds=4, shutdown_grace_seconds=1)


@pytest.fixture
def server(server_config, clock):
    running = RunningServer(server_config, clock)
    yield running
    running.stop()


@pytest.fixture
def stubs(server):
    connected = Stubs.connect(server.address)
    yield connected
    connected.channel.close()


@pytest.fixture
def new_username():
    return lambda prefix="user": f"{prefix}{next(_names)}"


@pytest.fixture
def alice(stubs, new_username):
    return register_and_login(stubs, new_username("alice"), time_zone="Europe/Paris")


@pytest.fixture
def bob(stubs, new_username):
    return register_and_login(stubs, new_username("bob"), time_zone="America/New_York")
