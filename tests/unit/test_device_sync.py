"""A device's side of SyncReadings: what it resends after a broken connection, and how it behaves against a
scripted server on a loopback port that stores batches the way the contract says (exactly, out of order)."""

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from fittrack.clients.sync import (
    SEQUENCE_WINDOW,
    DeviceSync,
    SyncBehaviour,
    UserSession,
    _lost_write,
    backoff_delay,
    percentile,
    plan_resume,
)
from fittrack.generated.v1 import account_pb2, metric_pb2, metric_pb2_grpc

Ack = metric_pb2.BatchAck
STEPS = 1
MINUTE = int(datetime(2026, 11, 24, 8, 0, tzinfo=UTC).timestamp())


def test_a_welcome_from_a_device_never_seen_means_resending_the_whole_outbox():
    assert plan_resume([3, 1, 2], last_durable=0) == ([], [1, 2, 3])


def test_batches_up_to_the_last_durable_one_are_delivered_and_the_rest_resent():
    assert plan_resume([5, 6, 7, 8], last_durable=6) == ([5, 6], [7, 8])


def test_batches_the_welcome_lists_as_missing_are_resent_though_below_the_last_durable_one():
    assert plan_resume([5, 6, 7, 8], last_durable=8, missing=[2, 6]) == ([5, 7, 8], [6])


def test_batches_too_far_back_for_the_welcome_to_vouch_for_are_resent():
    last = 100
    oldest_vouched = last - SEQUENCE_WINDOW
    assert plan_resume([oldest_vouched - 1, oldest_vouched, last], last) == (
        [oldest_vouched, last],
        [oldest_vouched - 1],
    )


def test_an_empty_outbox_has_nothing_to_resend():
    assert plan_resume([], last_durable=42, missing=[40]) == ([], [])


def test_backoff_doubles_per_failure_up_to_the_cap_and_keeps_at_least_half_of_each_step():
    assert [backoff_delay(attempt, 0.0, 0.1, 2.0) for attempt in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff_delay(3, 0.999, 0.1, 2.0) == pytest.approx(0.8, rel=1e-3)
    assert backoff_delay(30, 0.5, 0.1, 2.0) == 1.5


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50, 99, 100)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


# --- against a scripted server ---


class ScriptedMetrics(metric_pb2_grpc.MetricServiceServicer):
    """Stores batches exactly per sequence and welcomes with missing sequences, as the contract says.

    `decide(sequence, connection)` scripts each batch: "store" (and ack), "ack-duplicate" (store silently and
    answer DUPLICATE), "store-silently" (durable, but the ack is lost), "lose" (never stored, never acked),
    "reject", "abort" (end the stream with UNAVAILABLE before reading the batch's content) or "stall" (hang).
    """

    def __init__(self, decide: Callable[[int, int], str] = lambda sequence, connection: "store") -> None:
        self.decide = decide
        self.held: set[int] = set()
        self.stored = Counter()
        self.received: list[int] = []
        self.connections = 0
        self.hello_only_aborts = False

    def welcome(self, device_id: str) -> metric_pb2.SyncWelcome:
        highest = max(self.held, default=0)
        missing = [s for s in range(max(1, highest - 64), highest) if s not in self.held]
        return metric_pb2.SyncWelcome(device_id=device_id, last_durable_sequence=highest, missing_sequences=missing)

    async def SyncReadings(self, request_iterator, context):
        self.connections += 1
        connection = self.connections
        async for request in request_iterator:
            if request.WhichOneof("message") == "hello":
                if self.hello_only_aborts:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the reading bus is down")
                yield metric_pb2.SyncReadingsResponse(welcome=self.welcome(request.hello.device_id))
                continue
            sequence = request.batch.sequence
            action = self.decide(sequence, connection)
            if action == "abort":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the reading bus is down")
            if action == "stall":
                await asyncio.Event().wait()
            self.received.append(sequence)
            if action == "lose":
                continue
            if action == "reject":
                yield self._ack(sequence, Ack.STATUS_REJECTED)
                continue
            duplicate = sequence in self.held
            self.held.add(sequence)
            if not duplicate:
                self.stored[sequence] += 1
            if action == "store":
                yield self._ack(sequence, Ack.STATUS_DUPLICATE if duplicate else Ack.STATUS_ACCEPTED)
            elif action == "ack-duplicate":
                yield self._ack(sequence, Ack.STATUS_DUPLICATE)

    @staticmethod
    def _ack(sequence: int, status: int) -> metric_pb2.SyncReadingsResponse:
        return metric_pb2.SyncReadingsResponse(ack=Ack(device_id="watch", sequence=sequence, status=status))


def session() -> UserSession:
    login = account_pb2.LoginResponse(access_token="token")
    login.access_token_expires_at.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    return UserSession(None, "alice", "password", login)


def batches(count: int):
    chunks = iter([[(STEPS, MINUTE + 60 * n, 10.0)] for n in range(count)])

    async def source():
        return next(chunks, None)

    return source


def sync(servicer: ScriptedMetrics, count: int, **behaviour):
    """Run one device with `count` one-reading batches against `servicer`; returns its stats."""
    behaviour = {"base_backoff": 0.001, "max_backoff": 0.01, "ack_timeout": 5.0} | behaviour

    async def run():
        server = grpc.aio.server()
        metric_pb2_grpc.add_MetricServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            device = DeviceSync(
                f"127.0.0.1:{port}", "watch", session(), batches(count), SyncBehaviour(**behaviour), random.Random(1)
            )
            return await asyncio.wait_for(device.run(), 30)
        finally:
            await server.stop(grace=None)

    return asyncio.run(run())


def test_a_device_delivers_every_batch_once_on_a_steady_connection():
    server = ScriptedMetrics()
    stats = sync(server, 10)

    assert server.received == list(range(1, 11))
    assert (stats.batches, stats.accepted, stats.reconnects, stats.unacknowledged) == (10, 10, 0, 0)
    assert len(stats.ack_latencies) == 10


def test_after_unavailable_a_device_resends_only_what_the_welcome_says_is_missing():
    # Batch 3 was in flight and lost while 4 became durable; the stream then ends with UNAVAILABLE.
    def decide(sequence, connection):
        if connection == 1:
            return {3: "lose", 4: "store-silently", 5: "abort"}.get(sequence, "store")
        return "store"

    server = ScriptedMetrics(decide)
    stats = sync(server, 8)

    # 5 and 6 were in flight too, unread by the server: they go again, after 3.
    assert server.received == [1, 2, 3, 4, 3, 5, 6, 7, 8]
    assert server.held == set(range(1, 9))
    assert set(server.stored.values()) == {1}
    # A write racing the server's status can fail with INTERNAL instead of UNAVAILABLE: one error either way.
    assert (stats.trimmed, stats.server_errors.total()) == (1, 1)
    assert stats.delivered == stats.batches == 8


def test_a_duplicate_ack_counts_as_delivered():
    # The ack for batch 2 is lost with the connection, and the welcome lags behind (as when the old stream
    # is still finishing): the device resends batch 2, and the server calls it a duplicate.
    def decide(sequence, connection):
        if connection == 1:
            return {2: "store-silently", 3: "abort"}.get(sequence, "store")
        return "store"

    server = ScriptedMetrics(decide)
    server.welcome = lambda device_id: metric_pb2.SyncWelcome(device_id=device_id, last_durable_sequence=1)
    stats = sync(server, 4)

    assert (stats.accepted, stats.duplicate, stats.unacknowledged) == (3, 1, 0)
    assert set(server.stored.values()) == {1}


def test_a_device_that_keeps_dropping_its_connection_still_delivers_everything_exactly_once():
    server = ScriptedMetrics()
    stats = sync(server, 40, disconnect_rate=0.5)

    assert stats.drops > 5
    assert stats.reconnects == stats.drops
    assert server.held == set(range(1, 41))
    assert set(server.stored.values()) == {1}
    assert stats.delivered == stats.batches == 40
    assert stats.unacknowledged == 0


def test_the_same_seed_drops_the_connection_after_the_same_batches():
    first, second = sync(ScriptedMetrics(), 30, disconnect_rate=0.3), sync(ScriptedMetrics(), 30, disconnect_rate=0.3)
    assert first.drops == second.drops > 0


def test_a_rejected_batch_is_reported_and_not_resent():
    server = ScriptedMetrics(lambda sequence, connection: "reject" if sequence == 2 else "store")
    stats = sync(server, 3)

    assert server.received == [1, 2, 3]
    assert (stats.accepted, stats.rejected, stats.unacknowledged) == (2, 1, 0)
    assert stats.rejections and stats.rejections[0].startswith("batch 2")


def test_a_device_gives_up_after_failing_to_connect_a_few_times_in_a_row():
    server = ScriptedMetrics()
    server.hello_only_aborts = True
    stats = sync(server, 3, max_failures=2)

    assert stats.server_errors == Counter(UNAVAILABLE=3)
    assert "gave up" in stats.error
    assert stats.unacknowledged == 0  # nothing was numbered: the device never got a welcome


def test_a_server_that_stops_acknowledging_counts_as_a_broken_connection():
    server = ScriptedMetrics(lambda sequence, connection: "stall" if connection == 1 and sequence == 2 else "store")
    stats = sync(server, 3, ack_timeout=0.2)

    assert any("no ack within" in anomaly for anomaly in stats.anomalies)
    assert server.held == {1, 2, 3}
    assert stats.unacknowledged == 0


def test_a_rejection_whose_reason_names_the_batch_is_not_prefixed_with_it_again():
    from fittrack.clients.sync import rejection

    named = "batch from device watch-1, sequence 7, reading 1 of 500: steps 5000 is impossible in one minute"
    assert rejection(7, named) == named
    assert rejection(7, "the batch holds no readings") == "batch 7: the batch holds no readings"


def test_a_hello_grpc_could_not_send_is_told_apart_from_a_status_the_server_sent():
    # gRPC fails a call whose write found the stream already ended by the server, with its own INTERNAL;
    # the device then tries again instead of reporting an INTERNAL the server never sent.
    def error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)

    assert _lost_write(error(grpc.StatusCode.INTERNAL, "Internal error from Core"))
    assert not _lost_write(error(grpc.StatusCode.INTERNAL, "the server failed"))
    assert not _lost_write(error(grpc.StatusCode.RESOURCE_EXHAUSTED, "this account already has 8 open streams"))
