"""Wearables over SyncReadings: pipelined acks, resume after a broken link, limits, late data and the merge."""

from __future__ import annotations

import dataclasses
import queue
import secrets
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.rpc import code_pb2

from fittrack.generated.v1 import common_pb2, metric_pb2
from tests.production import ROOT
from tests.support import (
    RunningServer,
    Stubs,
    batch,
    eventually,
    local_midnight,
    reading,
    register_and_login,
    rpc_error,
    upload,
    view_today,
)

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS
HEART = common_pb2.METRIC_KIND_HEART_RATE
Ack = metric_pb2.BatchAck


def sync_request(device_id: str, sequence: int, readings) -> metric_pb2.SyncReadingsRequest:
    return metric_pb2.SyncReadingsRequest(batch=batch(readings, device_id=device_id, sequence=sequence))


def hello(device_id: str) -> metric_pb2.SyncReadingsRequest:
    return metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device_id))


def welcome_of(stubs, user, device_id: str) -> metric_pb2.SyncWelcome:
    (response,) = list(stubs.metrics.SyncReadings(iter([hello(device_id)]), metadata=user.auth, timeout=10))
    return response.welcome


def minutes_of_today(clock, zone: str, count: int, start_minute: int = 10) -> list[int]:
    """`count` minute starts from `start_minute` minutes into the local today (always in the past or near future)."""
    midnight = local_midnight(clock, zone)
    return [midnight + 60 * (start_minute + n) for n in range(count)]


def steps_batches(device_id: str, minutes: list[int], per_batch: int, value: float = 10, first_sequence: int = 1):
    return [
        sync_request(device_id, first_sequence + n, [reading(STEPS, m, value) for m in minutes[i : i + per_batch]])
        for n, i in enumerate(range(0, len(minutes), per_batch))
    ]


def today_total(stubs, user, metric=STEPS):
    return view_today(stubs, user, metric).total


def test_a_device_may_send_many_batches_before_the_first_ack_and_gets_every_ack_in_order(stubs, alice, clock):
    requests = steps_batches("watch-1", minutes_of_today(clock, "Europe/Paris", 400), per_batch=10)
    acks = [r.ack for r in stubs.metrics.SyncReadings(iter(requests), metadata=alice.auth, timeout=60)]
    assert [a.sequence for a in acks] == list(range(1, 41))
    assert {a.status for a in acks} == {Ack.STATUS_ACCEPTED}
    eventually(lambda: today_total(stubs, alice), lambda total: total == 4000, timeout=60)


def test_a_device_that_lost_its_link_mid_stream_resends_what_was_not_acknowledged_and_loses_nothing(
    stubs, alice, clock
):
    requests = steps_batches("watch-1", minutes_of_today(clock, "Europe/Paris", 300), per_batch=10)
    outbox = {r.batch.sequence: r for r in requests}
    # Sends everything at once, then the link breaks after a few acks, with batches still in flight.
    call = stubs.metrics.SyncReadings(iter(requests), metadata=alice.auth, timeout=60)
    for response in call:
        outbox.pop(response.ack.sequence)
        if len(outbox) <= 25:
            call.cancel()
            break
    welcome = welcome_of(stubs, alice, "watch-1")
    assert welcome.last_durable_sequence >= 5
    # The device resends its whole outbox; what already got through is recognised.
    resend = [outbox[s] for s in sorted(outbox)]
    acks = [r.ack for r in stubs.metrics.SyncReadings(iter(resend), metadata=alice.auth, timeout=60)]
    assert [a.sequence for a in acks] == sorted(outbox)
    assert {a.status for a in acks} <= {Ack.STATUS_ACCEPTED, Ack.STATUS_DUPLICATE}
    eventually(lambda: today_total(stubs, alice), lambda total: total == 3000, timeout=60)
    assert welcome_of(stubs, alice, "watch-1").last_durable_sequence == 30


def test_a_batch_that_arrives_after_later_ones_is_stored_and_its_resend_is_a_duplicate(stubs, alice, clock):
    minutes = minutes_of_today(clock, "Europe/Paris", 6)
    first = [sync_request("watch-1", s, [reading(STEPS, minutes[s], 10)]) for s in (1, 2, 3, 5)]
    list(stubs.metrics.SyncReadings(iter(first), metadata=alice.auth, timeout=10))
    welcome = welcome_of(stubs, alice, "watch-1")
    assert (welcome.last_durable_sequence, list(welcome.missing_sequences)) == (5, [4])
    late = [sync_request("watch-1", s, [reading(STEPS, minutes[s], 10)]) for s in (4, 3, 4)]
    acks = [r.ack for r in stubs.metrics.SyncReadings(iter(late), metadata=alice.auth, timeout=10)]
    assert [a.status for a in acks] == [Ack.STATUS_ACCEPTED, Ack.STATUS_DUPLICATE, Ack.STATUS_DUPLICATE]
    assert list(welcome_of(stubs, alice, "watch-1").missing_sequences) == []
    eventually(lambda: today_total(stubs, alice), lambda total: total == 50)


def test_an_upload_resent_in_full_after_a_timeout_is_not_counted_twice(stubs, alice, clock):
    requests = steps_batches("phone", minutes_of_today(clock, "Europe/Paris", 30), per_batch=10)
    batches = [r.batch for r in requests]
    first = upload(stubs, alice, *batches)
    again = upload(stubs, alice, *batches)
    assert (first.batches_accepted, again.batches_accepted, again.batches_duplicate) == (3, 0, 3)
    eventually(lambda: today_total(stubs, alice), lambda total: total == 300)


def test_bad_batches_are_rejected_with_the_status_a_call_would_get_and_the_stream_goes_on(stubs, alice, clock):
    minutes = minutes_of_today(clock, "Europe/Paris", 1)
    too_many = [reading(STEPS, minutes[0] - 60 * i, 1) for i in range(1001)]
    requests = [
        sync_request("watch-1", 1, too_many),
        sync_request("watch-1", 2, [reading(HEART, minutes[0], 400)]),
        sync_request("watch-1", 3, [reading(STEPS, minutes[0], 42)]),
    ]
    acks = [r.ack for r in stubs.metrics.SyncReadings(iter(requests), metadata=alice.auth, timeout=10)]
    assert [a.status for a in acks] == [Ack.STATUS_REJECTED, Ack.STATUS_REJECTED, Ack.STATUS_ACCEPTED]
    assert [a.code for a in acks] == [code_pb2.RESOURCE_EXHAUSTED, code_pb2.INVALID_ARGUMENT, code_pb2.OK]
    assert "at most 1,000" in acks[0].reason and "split" in acks[0].reason
    assert "heart rate" in acks[1].reason
    eventually(lambda: today_total(stubs, alice), lambda total: total == 42)


def test_late_readings_from_a_week_ago_land_on_that_local_day(stubs, new_username, clock):
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14
    user = register_and_login(stubs, new_username("kiribati"), time_zone=zone.key)
    # 00:30 local time seven days ago: still the day before in UTC.
    local_day = clock().astimezone(zone).date() - timedelta(days=7)
    just_after_midnight = datetime(local_day.year, local_day.month, local_day.day, 0, 30, tzinfo=zone)
    assert just_after_midnight.astimezone(UTC).date() == local_day - timedelta(days=1)
    requests = [sync_request("ring", 1, [reading(STEPS, int(just_after_midnight.timestamp()), 321)])]
    (response,) = list(stubs.metrics.SyncReadings(iter(requests), metadata=user.auth, timeout=10))
    assert response.ack.status == Ack.STATUS_ACCEPTED
    month = metric_pb2.ViewMetricRequest(metric=STEPS, preset=common_pb2.RANGE_PRESET_LAST_30_DAYS)
    view = eventually(lambda: stubs.metrics.ViewMetric(month, metadata=user.auth), lambda v: v.total == 321)
    assert {(d.date.year, d.date.month, d.date.day) for d in view.days if d.value} == {
        (local_day.year, local_day.month, local_day.day)
    }


def test_the_merged_total_counts_each_minute_once_and_the_breakdown_shows_each_source(stubs, alice, clock):
    minutes = minutes_of_today(clock, "Europe/Paris", 3)
    # The watch saw all three minutes, the phone two of them (and more steps in one).
    upload(stubs, alice, batch([reading(STEPS, m, 100) for m in minutes], device_id="watch"))
    upload(stubs, alice, batch([reading(STEPS, minutes[0], 120), reading(STEPS, minutes[1], 90)], device_id="phone"))
    view = eventually(lambda: view_today(stubs, alice, STEPS), lambda v: len(v.days[-1].sources) == 2)
    assert view.total == 120 + 100 + 100
    assert [(s.source, s.value, s.minutes_with_data) for s in view.days[-1].sources] == [
        ("phone", 210, 2),
        ("watch", 300, 3),
    ]
    assert [(s.source, s.value) for s in view.sources] == [("phone", 210), ("watch", 300)]


def test_heart_rate_from_two_sources_is_averaged_per_minute_and_each_source_keeps_its_own_mean(stubs, alice, clock):
    minute = minutes_of_today(clock, "Europe/Paris", 1)[0]
    upload(stubs, alice, batch([reading(HEART, minute, 60)], device_id="watch"))
    upload(stubs, alice, batch([reading(HEART, minute, 80), reading(HEART, minute + 60, 100)], device_id="chest-strap"))
    view = eventually(lambda: view_today(stubs, alice, HEART), lambda v: len(v.days[-1].sources) == 2)
    assert (view.days[-1].value, view.days[-1].min, view.days[-1].max) == (85, 70, 100)
    assert [(s.source, s.value) for s in view.days[-1].sources] == [("chest-strap", 90), ("watch", 60)]


# --- limits ---------------------------------------------------------------------------------


@pytest.fixture
def limited_server(server_config, clock):
    config = dataclasses.replace(server_config, max_streams_per_user=2, max_message_bytes=64 * 1024)
    running = RunningServer(config, clock)
    yield running
    running.stop()


@pytest.fixture
def limited_stubs(limited_server):
    connected = Stubs.connect(limited_server.address)
    yield connected
    connected.channel.close()


class OpenStream:
    """A SyncReadings stream held open by the test: requests go in through a queue."""

    def __init__(self, stubs, user) -> None:
        self._requests: queue.Queue = queue.Queue()
        self.call = stubs.metrics.SyncReadings(iter(self._requests.get, None), metadata=user.auth, timeout=30)
        self._responses = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._responses.put(response)
        except grpc.RpcError as error:
            self._responses.put(error)

    def ask(self, request, timeout: float = 10):
        self._requests.put(request)
        return self._responses.get(timeout=timeout)

    def close(self) -> None:
        """End the stream from the client's side, as a device does when it is done."""
        self._requests.put(None)


def test_a_user_past_the_stream_limit_is_told_to_close_one_and_may_open_another_after(limited_stubs, new_username):
    user = register_and_login(limited_stubs, new_username("busy"))
    first, second = OpenStream(limited_stubs, user), OpenStream(limited_stubs, user)
    assert first.ask(hello("watch")).welcome.device_id == "watch"
    assert second.ask(hello("phone")).welcome.device_id == "phone"
    third = OpenStream(limited_stubs, user).ask(hello("ring"))
    assert isinstance(third, grpc.RpcError)
    assert third.code() == Code.RESOURCE_EXHAUSTED
    assert "2 open streams" in third.details() and "close one" in third.details()
    # Another user is not affected by this user's streams.
    other = register_and_login(limited_stubs, new_username("other"))
    assert OpenStream(limited_stubs, other).ask(hello("watch")).welcome.device_id == "watch"
    first.close()
    eventually(lambda: OpenStream(limited_stubs, user).ask(hello("ring")), lambda r: not isinstance(r, grpc.RpcError))
    second.close()


def test_a_message_over_the_size_limit_is_refused_with_resource_exhausted(limited_stubs, new_username, clock):
    user = register_and_login(limited_stubs, new_username("big"))
    minute = minutes_of_today(clock, "UTC", 1)[0]
    huge = batch([reading(STEPS, minute - 60 * i, 1) for i in range(4000)], device_id="watch")
    error = rpc_error(lambda: upload(limited_stubs, user, huge))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    # Nothing of it was stored.
    assert view_today(limited_stubs, user, STEPS).total == 0


HOLDER = """
import sys, threading, grpc
from fittrack.generated.v1 import metric_pb2, metric_pb2_grpc
stub = metric_pb2_grpc.MetricServiceStub(grpc.insecure_channel(sys.argv[1]))
auth = [("authorization", "Bearer " + sys.argv[2])]
release = threading.Event()
def hold(device):
    def requests():
        yield metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=device))
        release.wait()
    return stub.SyncReadings(requests(), metadata=auth)
calls = [hold("watch"), hold("phone")]
for call in calls:
    next(call)
print("ready", flush=True)
release.wait()
"""


def test_streams_of_a_device_that_stopped_answering_are_ended_by_keepalive_and_free_their_slots(
    server_config, clock, new_username
):
    config = dataclasses.replace(
        server_config, max_streams_per_user=2, keepalive_seconds=1, keepalive_timeout_seconds=1
    )
    running = RunningServer(config, clock)
    stubs = Stubs.connect(running.address)
    holder = None
    try:
        user = register_and_login(stubs, new_username("frozen"))
        token = dict(user.auth)["authorization"].removeprefix("Bearer ")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, running.address, token], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline().strip() == "ready"
        assert OpenStream(stubs, user).ask(hello("ring")).code() == Code.RESOURCE_EXHAUSTED
        # The device's process freezes: its connection stays up, but it no longer answers pings.
        holder.send_signal(signal.SIGSTOP)
        reply = eventually(
            lambda: OpenStream(stubs, user).ask(hello("ring")),
            lambda r: not isinstance(r, grpc.RpcError),
            timeout=20,
            interval=0.5,
        )
        assert reply.welcome.device_id == "ring"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        stubs.channel.close()
        running.stop()


def test_a_resend_with_other_readings_is_a_duplicate_and_changes_nothing_stored(stubs, alice, clock):
    minutes = minutes_of_today(clock, "Europe/Paris", 3)
    requests = [
        sync_request("watch-1", 1, [reading(STEPS, minutes[0], 40)]),
        # The same sequence again with other readings: a device whose outbox was rebuilt, say.
        sync_request("watch-1", 1, [reading(STEPS, minutes[1], 158)]),
        sync_request("watch-1", 2, [reading(STEPS, minutes[2], 1)]),
    ]
    acks = [r.ack for r in stubs.metrics.SyncReadings(iter(requests), metadata=alice.auth, timeout=10)]
    assert [a.status for a in acks] == [Ack.STATUS_ACCEPTED, Ack.STATUS_DUPLICATE, Ack.STATUS_ACCEPTED]
    # Sequence 2 is stored after both copies of 1: once it shows, the resend was weighed too.
    eventually(lambda: today_total(stubs, alice), lambda total: total in (41, 199), timeout=30)
    assert today_total(stubs, alice) == 41


def test_two_batches_with_one_sequence_in_one_upload_count_once(stubs, alice, clock):
    minutes = minutes_of_today(clock, "Europe/Paris", 3)
    response = upload(
        stubs,
        alice,
        batch([reading(STEPS, minutes[0], 100)], device_id="phone", sequence=1),
        batch([reading(STEPS, minutes[1], 300)], device_id="phone", sequence=1),
        batch([reading(STEPS, minutes[2], 1)], device_id="phone", sequence=2),
    )
    assert (response.batches_accepted, response.batches_duplicate) == (2, 1)
    eventually(lambda: today_total(stubs, alice), lambda total: total in (101, 401), timeout=30)
    assert today_total(stubs, alice) == 101


@pytest.mark.parametrize("profile", ["production"])
def test_a_resend_published_by_another_server_does_not_replace_the_first_copy(server, stubs, server_config, clock):
    # A second server behind the same balancer; the device's stream to it was opened before the first copy
    # became durable, so that server still takes sequence 1 for new and publishes its copy too.
    other = RunningServer(server_config, clock)
    other_stubs = Stubs.connect(other.address)
    try:
        user = register_and_login(stubs, f"moved-{secrets.token_hex(4)}", time_zone="Europe/Paris")
        minutes = minutes_of_today(clock, "Europe/Paris", 3)
        late = OpenStream(other_stubs, user)
        assert late.ask(hello("watch-1")).welcome.last_durable_sequence == 0
        acks = [
            r.ack
            for r in stubs.metrics.SyncReadings(
                iter([sync_request("watch-1", 1, [reading(STEPS, minutes[0], 40)])]), metadata=user.auth, timeout=10
            )
        ]
        assert [a.status for a in acks] == [Ack.STATUS_ACCEPTED]
        resend = late.ask(sync_request("watch-1", 1, [reading(STEPS, minutes[1], 158)])).ack
        assert resend.sequence == 1 and resend.status in (Ack.STATUS_ACCEPTED, Ack.STATUS_DUPLICATE)
        assert late.ask(sync_request("watch-1", 2, [reading(STEPS, minutes[2], 1)])).ack.status == Ack.STATUS_ACCEPTED
        late.close()
        eventually(lambda: today_total(stubs, user), lambda total: total in (41, 199), timeout=30)
        assert today_total(stubs, user) == 41
    finally:
        other_stubs.channel.close()
        other.stop()
