"""Users of the fake app, shared by the unit modules; each module provides its own `app` at its own clock."""

import pytest


@pytest.fixture
def alice(app):
    return app.sign_up("alice", time_zone="Europe/Paris")


@pytest.fixture
def bob(app):
    return app.sign_up("bob", time_zone="America/New_York")
