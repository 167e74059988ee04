"""The production profile when things break: Kafka killed mid-upload, the persister killed
between its write and its commit, Kafka or PostgreSQL down and back.

These tests stop and start the shared services (infra/services.sh) and always
restore them before they end.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.type.date_pb2 import Date
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition

from fittrack.app.config import Config
from fittrack.generated.v1 import account_pb2, common_pb2, metric_pb2
from fittrack.workers.persister import CRASH_EXIT_CODE
from tests.production import ProductionStack, run_services
from tests.support import (
    Stubs,
    batch,
    eventually,
    http_get,
    reading,
    register_and_login,
    rpc_error,
    server_settings,
)

STEPS = common_pb2.METRIC_KIND_STEPS
Ack = metric_pb2.BatchAck
pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def stack():
    stack = ProductionStack.create("rel")
    yield stack
    stack.destroy()


@pytest.fixture
def server_config(stack, tmp_path):
    """Production only, on this module's own slice; `server` and `stubs` come from tests/conftest.py."""
    return Config(**server_settings(tmp_path, ready_listen="127.0.0.1:0", **stack.config_values()))


@pytest.fixture
def user(stubs):
    return register_and_login(stubs, f"rel{random.randrange(10**9)}")


class Wearable:
    """A device that syncs its batches one at a time and, after any failure, reconnects,
    asks where to resume, and resends what was not acknowledged."""

    def __init__(self, stubs: Stubs, user, batches: list[metric_pb2.ReadingBatch]) -> None:
        self._stubs = stubs
        self._user = user
        self._batches = batches
        self.acked: set[int] = set()
        self.failures = 0
        self.progress = threading.Event()

    def sync_until_done(self, deadline: float) -> None:
        while len(self.acked) < len(self._batches):
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acked)} of {len(self._batches)} batches acknowledged in time")
            try:
                self._one_session()
            except grpc.RpcError as error:
                assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), error
                self.failures += 1
                time.sleep(0.2)  # reconnect backoff, as a device would

    def _one_session(self) -> None:
        pending = iter(self._batches)
        ack_seen = threading.Event()
        ack_seen.set()
        welcome_seen = threading.Event()
        resume_after = [0]

        def requests():
            yield metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id="watch"))
            welcome_seen.wait(30)
            for next_batch in pending:
                if next_batch.sequence <= resume_after[0]:
                    continue
                ack_seen.wait(30)
                ack_seen.clear()
                yield metric_pb2.SyncReadingsRequest(batch=next_batch)

        for response in self._stubs.metrics.SyncReadings(requests(), metadata=self._user.auth, timeout=60):
            if response.HasField("welcome"):
                resume_after[0] = response.welcome.last_durable_sequence
                self.acked.update(range(1, resume_after[0] + 1))
                welcome_seen.set()
                continue
            assert response.ack.status in (Ack.STATUS_ACCEPTED, Ack.STATUS_DUPLICATE), response.ack
            self.acked.add(response.ack.sequence)
            self.progress.set()
            ack_seen.set()


def make_batches(count: int, size: int, end: datetime) -> tuple[list[metric_pb2.ReadingBatch], int]:
    """`count` batches of `size` one-minute step readings ending at `end`; returns them and their step total."""
    first_minute = int(end.timestamp()) // 60 * 60 - 60 * count * size
    batches, total = [], 0
    for number in range(count):
        readings = []
        for offset in range(size):
            value = 1 + (number * size + offset) % 7
            total += value
            readings.append(reading(STEPS, first_minute + 60 * (number * size + offset), value))
        batches.append(batch(readings, device_id="watch", sequence=number + 1))
    return batches, total


def steps_between(stubs, user, start: date, end: date) -> float:
    request = metric_pb2.ViewMetricRequest(
        metric=STEPS,
        dates=common_pb2.DateRange(
            start=Date(year=start.year, month=start.month, day=start.day),
            end=Date(year=end.year, month=end.month, day=end.day),
        ),
    )
    return stubs.metrics.ViewMetric(request, metadata=user.auth).total


def test_killing_kafka_mid_upload_loses_and_doubles_nothing_acknowledged(stack, stubs, user):
    stack.start_persister()
    now = datetime.now(UTC)
    batches, expected = make_batches(200, 100, now)  # 20,000 readings over the last 14 days
    device = Wearable(stubs, user, batches)

    def kill_kafka_midway():
        eventually(lambda: len(device.acked), lambda acked: acked >= 40, timeout=120)
        run_services("kafka-kill")
        run_services("kafka-start")

    killer = threading.Thread(target=kill_kafka_midway)
    killer.start()
    try:
        device.sync_until_done(time.monotonic() + 300)
    finally:
        killer.join()
        run_services("kafka-start")
    assert len(device.acked) == 200
    start, end = (now - timedelta(days=15)).date(), now.date()
    eventually(lambda: steps_between(stubs, user, start, end), lambda total: total >= expected, timeout=120)
    # Let a late duplicate, if there were one, arrive before judging.
    assert steps_between(stubs, user, start, end) == expected


def test_a_persister_started_while_kafka_is_down_waits_for_it_and_then_persists(stack, stubs, user, tmp_path):
    stack.stop_persisters()
    log_path = tmp_path / "persister.log"
    run_services("kafka-kill")
    try:
        with log_path.open("w") as log_file:
            waiting = stack.start_persister(stderr=log_file)
        eventually(log_path.read_text, lambda text: "Kafka is not reachable yet" in text, timeout=60)
        assert waiting.poll() is None, log_path.read_text()
    finally:
        run_services("kafka-start")
    now = datetime.now(UTC)
    batches, expected = make_batches(10, 100, now)
    Wearable(stubs, user, batches).sync_until_done(time.monotonic() + 120)
    start, end = (now - timedelta(days=2)).date(), now.date()
    eventually(lambda: steps_between(stubs, user, start, end), lambda total: total >= expected, timeout=120)
    assert waiting.poll() is None, log_path.read_text()


def test_a_persister_killed_between_write_and_commit_loses_and_doubles_nothing(stack, stubs, user):
    stack.stop_persisters()
    crashing = stack.start_persister(FITTRACK_PERSISTER_CRASH_AFTER_WRITES="1")
    now = datetime.now(UTC)
    batches, expected = make_batches(30, 100, now)
    Wearable(stubs, user, batches).sync_until_done(time.monotonic() + 120)
    # It wrote the first poll and died before committing it.
    eventually(lambda: crashing.poll(), lambda code: code is not None, timeout=60)
    assert crashing.returncode == CRASH_EXIT_CODE

    # Then killed at random moments, three times, while it works through the rest.
    for _ in range(3):
        victim = stack.start_persister()
        time.sleep(random.uniform(0.5, 2.5))  # a random point in its work, not a synchronisation
        victim.kill()
        victim.wait()
    stack.start_persister()
    start, end = (now - timedelta(days=3)).date(), now.date()
    eventually(lambda: steps_between(stubs, user, start, end), lambda total: total >= expected, timeout=120)
    assert steps_between(stubs, user, start, end) == expected


def replay_caught_up(stack: ProductionStack, group: str) -> bool:
    """Whether the consumer group has committed the end of every partition of the readings topic."""
    topic = stack.env["FITTRACK_READINGS_TOPIC"]
    # Only asks the group coordinator for the group's offsets: it never joins the group.
    consumer = KafkaConsumer(bootstrap_servers=stack.env["FITTRACK_KAFKA_BOOTSTRAP"], group_id=group)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        return bool(partitions) and all(end == 0 or (consumer.committed(p) or 0) >= end for p, end in ends.items())
    finally:
        consumer.close(autocommit=False)


def test_replaying_the_readings_topic_from_the_start_counts_nothing_twice(stack, stubs, user):
    stack.start_persister()
    now = datetime.now(UTC)
    batches, expected = make_batches(20, 100, now)
    Wearable(stubs, user, batches).sync_until_done(time.monotonic() + 120)
    start, end = (now - timedelta(days=3)).date(), now.date()
    eventually(lambda: steps_between(stubs, user, start, end), lambda total: total >= expected, timeout=120)
    # A new consumer group reads the whole topic again, every batch of this module's tests included.
    group = f"{stack.name}-replay"
    stack.start_persister(FITTRACK_PERSISTER_GROUP=group)
    eventually(lambda: replay_caught_up(stack, group), lambda done: done, timeout=180, interval=0.5)
    assert steps_between(stubs, user, start, end) == expected


def health_of(server, service: str) -> int:
    with grpc.insecure_channel(server.address) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status


def readiness(server) -> tuple[int, str]:
    return http_get(f"http://127.0.0.1:{server.server.readiness.port}/ready")


def metric_health(server) -> int:
    return health_of(server, "fittrack.v1.MetricService")


def account_health(server) -> int:
    return health_of(server, "fittrack.v1.AccountService")


def test_without_kafka_uploads_answer_unavailable_in_time_and_recover_by_themselves(stack, server, stubs, user):
    upload_batch = batch([reading(STEPS, int(time.time()) // 60 * 60, 10)], device_id="phone")
    requests = lambda: iter([metric_pb2.UploadReadingsRequest(batch=upload_batch)])  # noqa: E731
    assert readiness(server) == (200, "serving\n")
    run_services("kafka-kill")
    try:
        eventually(lambda: metric_health(server), lambda s: s == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=15)
        # A load balancer that cannot ask gRPC learns the same from the readiness endpoint.
        status, body = readiness(server)
        assert status == 503 and "Kafka" in body
        started = time.monotonic()
        error = rpc_error(lambda: stubs.metrics.UploadReadings(requests(), metadata=user.auth, timeout=5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 5
        assert "Kafka" in error.details()
    finally:
        run_services("kafka-start")
    eventually(lambda: metric_health(server), lambda s: s == health_pb2.HealthCheckResponse.SERVING, timeout=60)
    assert readiness(server) == (200, "serving\n")

    def upload_once():
        try:
            return stubs.metrics.UploadReadings(requests(), metadata=user.auth, timeout=10).readings_accepted
        except grpc.RpcError:
            return 0

    assert eventually(upload_once, lambda accepted: accepted == 1, timeout=60) == 1


def test_without_postgresql_account_calls_answer_unavailable_and_recover_without_a_restart(server, stubs, user):
    profile = lambda: stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=user.auth, timeout=5)  # noqa: E731
    assert profile().user_id == user.user_id
    assert account_health(server) == health_pb2.HealthCheckResponse.SERVING
    run_services("pg-stop")
    try:
        # A balancer asking about the account service learns it cannot work; the process itself is alive.
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        eventually(lambda: account_health(server), lambda s: s == not_serving, timeout=15)
        assert health_of(server, "") == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        error = rpc_error(profile)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 5
        login = rpc_error(
            lambda: stubs.accounts.Login(
                account_pb2.LoginRequest(username=user.username, password=user.password), timeout=5
            )
        )
        assert login.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        run_services("pg-start")
        # FerretDB 1.24 pools its own PostgreSQL connections, and an outage while persisters are writing has
        # left that pool stuck (every later call hanging, for over half an hour). What this test is about is
        # the account database, so FerretDB gets a fresh start and later runs find it working.
        run_services("ferretdb-stop")
        run_services("ferretdb-start")
    eventually(lambda: account_health(server), lambda s: s == health_pb2.HealthCheckResponse.SERVING, timeout=60)

    def profile_or_none():
        try:
            return profile().user_id
        except grpc.RpcError:
            return None

    assert eventually(profile_or_none, lambda found: found == user.user_id, timeout=60) == user.user_id
