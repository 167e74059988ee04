"""Inputs at the edges answer with a status that says what to fix, never INTERNAL;
long-lived streams end when their session does."""

import dataclasses
import queue
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.type.date_pb2 import Date

from fittrack.generated.v1 import account_pb2, common_pb2, goal_pb2, metric_pb2, notification_pb2, report_pb2
from tests.support import PASSWORD, RunningServer, Stubs, batch, local_midnight, reading, rpc_error, upload

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS


@pytest.fixture
def server_config(server_config):
    # Streams re-check their session this often; short, so the test sees it happen.
    return dataclasses.replace(server_config, stream_recheck_seconds=0.2)


@pytest.mark.parametrize("zone", ["Europe", "America/", "x" * 300, "../etc/passwd", "Europe/Paris\x00"])
def test_a_time_zone_that_is_not_an_iana_name_is_invalid(stubs, alice, zone):
    update = account_pb2.UpdateProfileRequest(profile=account_pb2.ProfileFields(time_zone=zone))
    error = rpc_error(lambda: stubs.accounts.UpdateProfile(update, metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "IANA" in error.details()


@pytest.mark.parametrize("year", [1, 9999])
def test_dates_at_the_ends_of_the_calendar_are_invalid(stubs, alice, year):
    goal = stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_WEEKLY, target=1000), metadata=alice.auth
    )
    edge = Date(year=year, month=12 if year > 1 else 1, day=31 if year > 1 else 1)
    calls = [
        lambda: stubs.goals.GetGoalProgress(
            goal_pb2.GetGoalProgressRequest(goal_id=goal.goal_id, date=edge), metadata=alice.auth
        ),
        lambda: stubs.reports.ViewReport(
            report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK, anchor=edge), metadata=alice.auth
        ),
    ]
    for call in calls:
        error = rpc_error(call)
        assert error.code() == Code.INVALID_ARGUMENT
        assert "year" in error.details()


@pytest.mark.parametrize("seconds", [-62135596801, -60, 2**62])
def test_a_reading_time_out_of_range_is_invalid(stubs, alice, seconds):
    error = rpc_error(lambda: upload(stubs, alice, batch([reading(STEPS, seconds, 1)])))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "check the device clock" in error.details()


def test_a_sequence_beyond_64_signed_bits_is_invalid(stubs, alice, clock):
    when = local_midnight(clock, "Europe/Paris") + 600
    error = rpc_error(lambda: upload(stubs, alice, batch([reading(STEPS, when, 1)], sequence=2**63)))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "sequence" in error.details()


def test_malformed_ids_and_names_are_simply_not_found(stubs, alice):
    for goal_id in ["\x00", "x" * 5000, "'; DROP TABLE goals; --"]:
        request = goal_pb2.DeleteGoalRequest(goal_id=goal_id)
        assert rpc_error(lambda r=request: stubs.goals.DeleteGoal(r, metadata=alice.auth)).code() == Code.NOT_FOUND
    mark = notification_pb2.MarkReadRequest(notification_ids=["\x00"])
    assert rpc_error(lambda: stubs.notifications.MarkRead(mark, metadata=alice.auth)).code() == Code.NOT_FOUND
    login = account_pb2.LoginRequest(username="ali\x00ce", password=PASSWORD)
    assert rpc_error(lambda: stubs.accounts.Login(login)).code() == Code.UNAUTHENTICATED
    huge_token = notification_pb2.ListNotificationsRequest(page_token="9" * 30)
    error = rpc_error(lambda: stubs.notifications.ListNotifications(huge_token, metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT


def test_refreshing_cannot_keep_a_session_alive_past_the_password_expiry(stubs, alice, clock):
    refresh_token = alice.login.refresh_token
    for _ in range(3):  # days 25, 50 and 75: each refresh token is good for 30 days
        clock.advance(timedelta(days=25))
        refresh_token = stubs.accounts.RefreshToken(
            account_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        ).refresh_token
    clock.advance(timedelta(days=25))  # day 100: the password expired on day 90
    error = rpc_error(lambda: stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=refresh_token)))
    assert error.code() == Code.FAILED_PRECONDITION
    assert "ChangePassword" in error.details()


def test_an_open_notification_stream_ends_when_its_session_does(stubs, alice):
    stream = stubs.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=alice.auth, timeout=20
    )
    stream.initial_metadata()
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
    with pytest.raises(grpc.RpcError) as ended:
        next(stream)
    assert ended.value.code() == Code.UNAUTHENTICATED


def test_an_open_sync_stream_refuses_batches_once_its_session_has_ended(stubs, alice, clock):

    outgoing: queue.Queue = queue.Queue()

    def requests():
        while (item := outgoing.get()) is not None:
            yield item

    responses = stubs.metrics.SyncReadings(requests(), metadata=alice.auth, timeout=20)
    start = local_midnight(clock, "Europe/Paris") + 600
    outgoing.put(metric_pb2.SyncReadingsRequest(batch=batch([reading(STEPS, start, 5)], sequence=1)))
    assert next(responses).ack.status == metric_pb2.BatchAck.STATUS_ACCEPTED
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
    with pytest.raises(grpc.RpcError) as ended:
        for sequence in range(2, 200):
            outgoing.put(
                metric_pb2.SyncReadingsRequest(
                    batch=batch([reading(STEPS, start - 60 * sequence, 5)], sequence=sequence)
                )
            )
            next(responses)
    outgoing.put(None)
    assert ended.value.code() == Code.UNAUTHENTICATED


class IdleSync:
    """A SyncReadings stream that says hello and then sends nothing, as a device with nothing new does."""

    def __init__(self, stubs, auth, device_id: str) -> None:
        self._requests: queue.Queue = queue.Queue()
        # The deadline is the test's bound on how soon the server must end the stream.
        self._responses = stubs.metrics.SyncReadings(iter(self._requests.get, None), metadata=auth, timeout=10)
        self._requests.put(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device_id)))
        try:
            self.opened = next(self._responses).HasField("welcome")
        except grpc.RpcError as error:
            self.opened, self.refused = False, error

    def end(self) -> grpc.RpcError:
        """How the server ended the stream, waiting for it up to the deadline."""
        try:
            response = next(self._responses)
        except grpc.RpcError as error:
            return error
        finally:
            self._requests.put(None)
        raise AssertionError(f"the stream went on with {response}")

    def close(self) -> None:
        self._requests.put(None)


def test_an_idle_sync_stream_ends_with_unauthenticated_soon_after_logout(stubs, alice):
    stream = IdleSync(stubs, alice.auth, "watch-1")
    assert stream.opened
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
    ended = stream.end()
    assert ended.code() == Code.UNAUTHENTICATED
    assert "session has ended" in ended.details()


def test_an_upload_that_sends_nothing_ends_with_unauthenticated_soon_after_logout(stubs, alice):
    requests: queue.Queue = queue.Queue()
    upload_call = stubs.metrics.UploadReadings.future(iter(requests.get, None), metadata=alice.auth, timeout=10)
    try:
        stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)
        assert upload_call.exception(timeout=15).code() == Code.UNAUTHENTICATED
    finally:
        requests.put(None)


def test_after_a_password_change_the_owner_can_open_8_streams_although_8_idle_streams_of_the_old_session_held_them(
    stubs, alice
):
    stolen = [IdleSync(stubs, alice.auth, f"thief-{n}") for n in range(8)]
    owner = stubs.accounts.Login(account_pb2.LoginRequest(username=alice.username, password=PASSWORD))
    owner_auth = [("authorization", f"Bearer {owner.access_token}")]
    fresh: list[IdleSync] = []
    try:
        assert all(stream.opened for stream in stolen)
        refused = IdleSync(stubs, owner_auth, "watch-1")
        assert refused.refused.code() == Code.RESOURCE_EXHAUSTED
        change = account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="a fresh staple battery")
        stubs.accounts.ChangePassword(change, metadata=owner_auth)
        # The server frees a stream's slot before it tells the client that the stream has ended.
        assert [stream.end().code() for stream in stolen] == [Code.UNAUTHENTICATED] * 8
        fresh = [IdleSync(stubs, owner_auth, f"watch-{n}") for n in range(8)]
        assert all(stream.opened for stream in fresh)
    finally:
        for stream in stolen + fresh:
            stream.close()


def test_a_reading_from_1900_is_refused_with_its_date_and_the_batch_named_by_device_and_sequence(stubs, alice):
    seconds = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
    error = rpc_error(
        lambda: upload(stubs, alice, batch([reading(STEPS, seconds, 5)], device_id="watch-1", sequence=7))
    )
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (
        "batch from device watch-1, sequence 7, reading 1 of 1: 1900-01-01T00:00Z is before 2000-01-01, "
        "the earliest time a reading may have; check the device clock"
    )


@pytest.fixture
def second_server(server_config, clock):
    """Another server process on the same databases, as behind a load balancer."""
    running = RunningServer(server_config, clock)
    yield running
    running.stop()


# Two servers share accounts only in the production profile (one SQLite file is one server's).
@pytest.mark.parametrize("profile", ["production"])
def test_a_logout_on_one_server_ends_the_users_idle_streams_on_another_and_frees_their_slots(
    stubs, alice, second_server
):
    other = Stubs.connect(second_server.address)
    try:
        streams = [IdleSync(other, alice.auth, f"watch-{n}") for n in range(8)]
        assert all(stream.opened for stream in streams)
        stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=alice.auth)  # on the first server
        assert all(stream.end().code() == Code.UNAUTHENTICATED for stream in streams)
        login = stubs.accounts.Login(account_pb2.LoginRequest(username=alice.username, password=PASSWORD))
        fresh = IdleSync(other, [("authorization", f"Bearer {login.access_token}")], "watch-0")
        assert fresh.opened  # the ended streams' slots on the second server are free again
        fresh.close()
    finally:
        other.channel.close()
