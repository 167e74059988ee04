"""The production profile's Prometheus endpoints, scraped over HTTP from the server, a persister and a dispatcher
running on the shared services: what they say agrees with what the test sent."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from fittrack.app.config import Config
from fittrack.core.adapters.instruments import Instruments, count_producer_retries
from fittrack.core.adapters.kafka import make_producer
from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.notifications import Notification, NotificationKind
from fittrack.generated.v1 import common_pb2, metric_pb2
from tests.forwarder import Forwarder
from tests.production import ROOT, ProductionStack
from tests.prometheus import free_port, scrape
from tests.support import (
    Clock,
    RunningServer,
    Stubs,
    batch,
    eventually,
    minute_start,
    reading,
    register_and_login,
    server_settings,
)

pytestmark = pytest.mark.production

STEPS = common_pb2.METRIC_KIND_STEPS
Ack = metric_pb2.BatchAck


@pytest.fixture(scope="module")
def stack():
    created = ProductionStack.create("prom")
    yield created
    created.destroy()


@pytest.fixture(scope="module")
def persister_port(stack):
    port = free_port()
    # Lag refreshed every 5 s (LAG_SECONDS): the waits below allow for it.
    stack.start_persister(FITTRACK_METRICS_LISTEN=f"127.0.0.1:{port}")
    eventually(lambda: _answers(port), bool, timeout=60, interval=0.2)
    return port


@pytest.fixture(scope="module")
def dispatcher_port(stack):
    port = free_port()
    stack.start_dispatcher(FITTRACK_METRICS_LISTEN=f"127.0.0.1:{port}")
    eventually(lambda: _answers(port), bool, timeout=60, interval=0.2)
    return port


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


@pytest.fixture
def server_config(stack, tmp_path) -> Config:
    return Config(**server_settings(tmp_path, metrics_listen="127.0.0.1:0", **stack.config_values()))


@pytest.fixture
def measured(server_config):
    running = RunningServer(server_config, Clock())
    yield running
    running.stop()


def sync_batches(stubs, user, count: int, per_batch: int = 5) -> list:
    start = minute_start(datetime.now(UTC) - timedelta(hours=2))
    requests = [
        metric_pb2.SyncReadingsRequest(
            batch=batch([reading(STEPS, start + 60 * (n * per_batch + i), 2) for i in range(per_batch)], sequence=n + 1)
        )
        for n in range(count)
    ]
    return [r.ack for r in stubs.metrics.SyncReadings(iter(requests), metadata=user.auth, timeout=60)]


def test_a_sync_is_counted_by_the_server_and_the_persister_consumes_it_until_no_partition_lags(
    stack, persister_port, measured
):
    readings_topic = stack.env["FITTRACK_READINGS_TOPIC"]
    before = scrape(persister_port).value("fittrack_kafka_consumed_records_total", role="persister")
    stubs = Stubs.connect(measured.address)
    try:
        user = register_and_login(stubs, f"prom-sync-{free_port()}")
        acks = sync_batches(stubs, user, count=6)
    finally:
        stubs.channel.close()
    assert {a.status for a in acks} == {Ack.STATUS_ACCEPTED}

    server = scrape(measured.server.metrics.port)
    assert server.value("fittrack_ingest_batches_total", outcome="accepted") == 6
    assert server.value("fittrack_ingest_readings_total", outcome="accepted") == 30
    assert server.value("fittrack_ingest_ack_seconds_count") == 6
    assert server.value("fittrack_ingest_batches_in_flight") == 0
    # The server's own store calls: the account database for the registration, and its pool's gauge.
    assert server.value("fittrack_store_operation_seconds_count", store="postgresql", operation="users.add") == 1
    assert server.series("fittrack_store_pool_connections_in_use")
    assert server.value("fittrack_kafka_produce_errors_total") == 0

    # One record per batch on the stack's own topic: the persister consumes exactly those.
    persister = eventually(
        lambda: scrape(persister_port),
        lambda f: (
            f.value("fittrack_kafka_consumed_records_total", role="persister", topic=readings_topic) == before + 6
        ),
        timeout=60,
        interval=0.2,
    )
    assert persister.value("fittrack_kafka_batch_apply_seconds_count", role="persister") >= 1
    assert (
        persister.value(
            "fittrack_store_operation_seconds_count", store="mongodb", operation="metric_store.upsert_minutes"
        )
        >= 1
    )
    pools = {
        labels["store"]: labels["pool"] for labels, _ in persister.series("fittrack_store_pool_connections_in_use")
    }
    assert pools["postgresql"] == "primary"
    # pymongo's pool of the server the URI names, by host:port; idle, every connection is back in it.
    assert pools["mongodb"] in stack.settings["FITTRACK_MONGO_URI"]
    assert persister.value("fittrack_store_pool_connections_in_use", store="mongodb") == 0
    # Every one of the topic's 4 partitions is reported, and none lags once the records are committed.
    lagging = eventually(
        lambda: scrape(persister_port).series("fittrack_kafka_consumer_lag"),
        lambda series: len(series) == 4 and all(value == 0 for _, value in series),
        timeout=30,
        interval=0.5,
    )
    assert {labels["partition"] for labels, _ in lagging} == {"0", "1", "2", "3"}
    assert {(labels["role"], labels["topic"]) for labels, _ in lagging} == {("persister", readings_topic)}


def test_a_persister_started_after_readings_were_sent_consumes_exactly_those_and_ends_with_no_lag(
    stack, persister_port, measured
):
    stack.stop_persisters()
    stubs = Stubs.connect(measured.address)
    try:
        user = register_and_login(stubs, f"prom-lag-{free_port()}")
        assert len(sync_batches(stubs, user, count=4)) == 4
    finally:
        stubs.channel.close()
    port = free_port()
    stack.start_persister(FITTRACK_METRICS_LISTEN=f"127.0.0.1:{port}")
    eventually(lambda: _answers(port), bool, timeout=60, interval=0.2)
    # The 4 waiting records are consumed (they are all this fresh process consumes) and the lag ends at 0.
    figures = eventually(
        lambda: scrape(port),
        lambda f: (
            f.value("fittrack_kafka_consumed_records_total", role="persister") == 4
            and len(f.series("fittrack_kafka_consumer_lag")) == 4
            and f.value("fittrack_kafka_consumer_lag") == 0
        ),
        timeout=60,
        interval=0.5,
    )
    assert figures.value("fittrack_kafka_batch_apply_seconds_count", role="persister") >= 1


def test_the_dispatcher_exports_its_consumer_figures(stack, dispatcher_port):
    figures = scrape(dispatcher_port)
    # It holds both notification partitions once it joined its group; nothing was sent, so nothing lags.
    lagging = eventually(
        lambda: scrape(dispatcher_port).series("fittrack_kafka_consumer_lag"), lambda s: len(s) == 2, timeout=30
    )
    assert all(labels["role"] == "dispatcher" for labels, _ in lagging)
    assert figures.value("process_resident_memory_bytes") > 0


def test_dependency_up_drops_to_0_while_kafka_is_unreachable_and_returns_to_1(stack, server_config):
    """Kafka reached through a forwarder the test can cut: the server's watch sees it go and come back."""
    host, port = stack.env["FITTRACK_KAFKA_BOOTSTRAP"].split(",")[0].rsplit(":", 1)
    with Forwarder((host, int(port))) as forwarder:
        config = dataclasses.replace(server_config, kafka_bootstrap=f"127.0.0.1:{forwarder.port}")
        running = RunningServer(config, Clock())
        try:
            metrics_port = running.server.metrics.port

            def up(dependency: str) -> float:
                return scrape(metrics_port).value("fittrack_dependency_up", dependency=dependency)

            eventually(lambda: (up("kafka"), up("postgresql")), lambda v: v == (1, 1), timeout=15)
            forwarder.cut()
            eventually(lambda: up("kafka"), lambda v: v == 0, timeout=15)
            assert up("postgresql") == 1
            forwarder.restore()
            eventually(lambda: up("kafka"), lambda v: v == 1, timeout=15)
        finally:
            running.stop()


def test_a_record_kafka_refuses_is_a_produce_error_of_its_topic(stack, measured):
    """A notification larger than the producer may send: kafka-python refuses it, and the queue says so."""
    topic = stack.env["FITTRACK_NOTIFICATIONS_TOPIC"]  # made by the server's start-up
    instruments = Instruments(CollectorRegistry())
    bootstrap = stack.env["FITTRACK_KAFKA_BOOTSTRAP"]
    queue = KafkaNotificationQueue(
        lambda: KafkaProducer(bootstrap_servers=bootstrap, max_request_size=1024), topic, 5.0, instruments
    )
    big = Notification("n-1", "user-1", NotificationKind.GOAL_MET, "Goal met", "x" * 4096, datetime.now(UTC), "key-1")
    try:
        with pytest.raises(Unavailable):
            queue.send([big])
    finally:
        queue.close()
    assert instruments.registry.get_sample_value("fittrack_kafka_produce_errors_total", {"topic": topic}) == 1


def test_the_retries_of_a_real_producer_are_counted_through_its_senders_hook(stack):
    """kafka-python keeps only a rate of retries; the count hangs on its sender's hook, which an upgrade could
    rename: this fails then, rather than the counter staying silently at 0."""
    instruments = Instruments(CollectorRegistry())
    producer = count_producer_retries(make_producer(stack.env["FITTRACK_KAFKA_BOOTSTRAP"], 5.0), instruments)
    try:
        sensors = producer._sender._sensors
        sensors.record_retries("readings", 2)  # what the sender calls when Kafka answers a retriable error
        retries = instruments.registry.get_sample_value("fittrack_kafka_produce_retries_total", {"topic": "readings"})
        assert retries == 2
    finally:
        producer.close(timeout=5)


def test_the_evaluator_exports_its_store_calls_and_its_process(stack):
    port = free_port()
    env = {**os.environ, **stack.env, "FITTRACK_LOG_LEVEL": "WARNING", "FITTRACK_METRICS_LISTEN": f"127.0.0.1:{port}"}
    process = subprocess.Popen([sys.executable, "-m", "fittrack.app.evaluator"], cwd=ROOT, env=env)
    try:
        # Its first tick looks for due slots and abandoned claims in the account database.
        figures = eventually(
            lambda: scrape(port) if _answers(port) else None,
            lambda f: f is not None and f.value("fittrack_store_operation_seconds_count", store="postgresql") > 0,
            timeout=60,
            interval=0.5,
        )
        assert figures.value("process_resident_memory_bytes") > 0
        assert figures.series("fittrack_store_pool_connections_in_use")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_a_worker_whose_metrics_address_is_taken_refuses_to_start_naming_the_setting(stack):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = stack.start_persister(
            stderr=subprocess.PIPE, FITTRACK_METRICS_LISTEN=f"127.0.0.1:{taken.getsockname()[1]}"
        )
        _, error = process.communicate(timeout=60)
    assert process.returncode == 1
    message = error.decode()
    assert "fittrack-persister:" in message and "FITTRACK_METRICS_LISTEN" in message
    assert "Traceback" not in message
