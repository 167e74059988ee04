"""Open streams: a slot each, and every wait of one gives way once its session has ended."""

from __future__ import annotations

import asyncio

import pytest

from fittrack.core.domain.accounts import Principal
from fittrack.core.domain.errors import ResourceExhausted, Unauthenticated, Unavailable
from fittrack.server.streams import OpenStream, OpenStreams

RECHECK = 0.01


class Sessions:
    """check_session over a set of ended sessions, counting the checks."""

    def __init__(self) -> None:
        self.ended: set[str] = set()
        self.checks: list[str] = []
        self.down = False

    def check(self, principal: Principal) -> None:
        self.checks.append(principal.session_id)
        if self.down:
            raise Unavailable("the account database is unavailable; try again")
        if principal.session_id in self.ended:
            raise Unauthenticated("your session has ended; log in again")


def test_an_idle_wait_gives_way_with_unauthenticated_once_the_session_ends():
    async def scenario():
        sessions = Sessions()
        streams = OpenStreams(8, sessions.check, RECHECK)
        with streams.hold(Principal("u1", "s1")) as stream:
            never = asyncio.Event()
            waiting = asyncio.ensure_future(stream.until_ended(never.wait()))
            sessions.ended.add("s1")
            with pytest.raises(Unauthenticated, match="session has ended"):
                await asyncio.wait_for(waiting, timeout=5)
            # Later waits give way at once.
            with pytest.raises(Unauthenticated):
                await stream.until_ended(never.wait())
        assert streams.open_for("u1") == 0

    asyncio.run(scenario())


def test_a_stream_its_client_cancels_is_cancelled_even_when_its_session_ends_at_the_same_moment():
    async def scenario():
        sessions = Sessions()
        streams = OpenStreams(8, sessions.check, 3600)
        opened: list[OpenStream] = []

        async def handler():
            with streams.hold(Principal("u1", "s1")) as stream:
                opened.append(stream)
                await stream.until_ended(asyncio.Event().wait())

        task = asyncio.ensure_future(handler())
        await asyncio.sleep(0)  # one step: the handler is now waiting
        task.cancel()
        # The session check ends the same stream before the task runs again.
        opened[0].end(Unauthenticated("your session has ended; log in again"))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert streams.open_for("u1") == 0

    asyncio.run(scenario())


def test_the_slots_are_counted_per_user():
    async def scenario():
        streams = OpenStreams(2, Sessions().check, 3600)
        with streams.hold(Principal("u1", "s1")), streams.hold(Principal("u1", "s2")):
            with (
                pytest.raises(ResourceExhausted, match="already has 2 open streams"),
                streams.hold(Principal("u1", "s3")),
            ):
                pass
            with streams.hold(Principal("u2", "s4")):
                assert (streams.open_for("u1"), streams.open_for("u2")) == (2, 1)
        assert (streams.open_for("u1"), streams.open_for("u2")) == (0, 0)
        # Once no stream is open, nothing is left to check.
        assert streams._watcher is None

    asyncio.run(scenario())


def test_one_check_serves_every_stream_of_a_session():
    async def scenario():
        sessions = Sessions()
        sessions.ended.add("s1")
        streams = OpenStreams(8, sessions.check, 0.05)

        async def device():
            with streams.hold(Principal("u1", "s1")) as stream:
                await stream.until_ended(asyncio.Event().wait())

        results = await asyncio.wait_for(asyncio.gather(*(device() for _ in range(3)), return_exceptions=True), 5)
        assert all(isinstance(result, Unauthenticated) for result in results)
        assert sessions.checks == ["s1"]

    asyncio.run(scenario())


def test_a_session_check_that_fails_leaves_the_streams_open_and_is_tried_again():
    async def scenario():
        sessions = Sessions()
        sessions.down = True
        streams = OpenStreams(8, sessions.check, RECHECK)
        with streams.hold(Principal("u1", "s1")) as stream:
            waiting = asyncio.ensure_future(stream.until_ended(asyncio.Event().wait()))

            async def checked_three_times():
                while len(sessions.checks) < 3:
                    await asyncio.sleep(RECHECK)

            await asyncio.wait_for(checked_three_times(), timeout=5)
            assert not waiting.done()
            sessions.down = False
            sessions.ended.add("s1")
            with pytest.raises(Unauthenticated):
                await asyncio.wait_for(waiting, timeout=5)

    asyncio.run(scenario())
