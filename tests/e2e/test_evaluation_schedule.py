"""The embedded server evaluates goals by itself, on its APScheduler tick, at each user's local slot times."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fittrack.generated.v1 import account_pb2, notification_pb2
from tests.e2e.test_evaluation import next_slot, notifications_of, steps_goal
from tests.support import RunningServer, Stubs, User, eventually, register_and_login, server_settings


@pytest.fixture
def ticking_server(tmp_path, clock):
    from fittrack.app.config import Config

    config = Config(**server_settings(tmp_path, evaluation_tick_seconds=0.1, evaluation_catch_up_minutes=0))
    running = RunningServer(config, clock)
    yield running
    running.stop()


def test_the_embedded_server_nudges_a_user_once_their_local_slot_time_comes(ticking_server, clock):
    stubs = Stubs.connect(ticking_server.address)
    user = register_and_login(stubs, "scheduled", time_zone="America/St_Johns")  # UTC-3:30
    steps_goal(stubs, user)
    moment, _ = next_slot(clock, "America/St_Johns")
    # Time passes; the scheduler's next tick finds the slot between its previous tick and now.
    clock.advance(moment - clock() + timedelta(seconds=1))
    login = stubs.accounts.Login(account_pb2.LoginRequest(username=user.username, password=user.password))
    user = User(user.user_id, user.username, user.password, login)
    kind = notification_pb2.NOTIFICATION_KIND_BEHIND_GOAL
    (nudge,) = eventually(lambda: notifications_of(stubs, user, kind), lambda found: len(found) == 1)
    assert "behind" in nudge.body
    stubs.channel.close()
