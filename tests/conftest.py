import itertools
import secrets

import pytest

from fittrack.app.config import Config
from tests.production import ProductionStack
from tests.support import Clock, RunningServer, Stubs, register_and_login, server_settings

_names = itertools.count()
# Usernames stay unique across runs: the production profile's databases are shared by a run's tests.
_RUN = secrets.token_hex(3)

PROFILES = ["embedded", "production"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def production_stack():
    """A slice of the production services for the whole run, with one persister and one dispatcher process."""
    stack = ProductionStack.create("e2e")
    stack.start_persister()
    stack.start_dispatcher()
    yield stack
    stack.destroy()


@pytest.fixture(params=PROFILES)
def profile(request) -> str:
    return request.param


@pytest.fixture
def server_config(profile, tmp_path, request) -> Config:
    """The profile's server with fast bcrypt; embedded data in the test's own directory."""
    common = server_settings(tmp_path)
    if profile == "embedded":
        return Config(**common)
    stack = request.getfixturevalue("production_stack")
    return Config(**common, **stack.config_values())


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
    return lambda prefix="user": f"{prefix}{next(_names)}-{_RUN}"


@pytest.fixture
def alice(stubs, new_username):
    return register_and_login(stubs, new_username("alice"), time_zone="Europe/Paris")


@pytest.fixture
def bob(stubs, new_username):
    return register_and_login(stubs, new_username("bob"), time_zone="America/New_York")
