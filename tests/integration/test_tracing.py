"""Tracing across processes in the production profile (Kafka, PostgreSQL, FerretDB running): one synced batch
followed from the device's call, through its Kafka record's headers, to the persister's write; notifications
followed into the dispatcher; and no headers at all with tracing off."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition
from opentelemetry.trace import SpanKind

from fittrack.app.config import Config
from fittrack.app.dispatcher import dispatch
from fittrack.app.persister import persist
from fittrack.app.process import Worker
from fittrack.app.stores import ensure_kafka_topics, notification_queue
from fittrack.app.tracing import DISPATCHER, PERSISTER, SERVER, Tracing
from fittrack.core.adapters.instruments import NO_INSTRUMENTS
from fittrack.core.adapters.kafka import ensure_topics
from fittrack.core.domain.notifications import Notification, NotificationKind
from fittrack.generated.v1 import common_pb2, goal_pb2, metric_pb2, notification_pb2
from tests.otlp import Collector, in_memory_tracing
from tests.production import ProductionStack
from tests.support import (
    RunningServer,
    Stubs,
    eventually,
    minute_start,
    reading,
    register_and_login,
    server_settings,
    view_today,
)
from tests.traced import CALLER_SPAN_ID, CALLER_TRACE_ID, TRACEPARENT, TracedServer, hex_span_id, hex_trace_id

pytestmark = pytest.mark.production

STEPS = common_pb2.METRIC_KIND_STEPS


@pytest.fixture
def stack():
    created = ProductionStack.create("tracing")
    yield created
    created.destroy()


def worker_config(stack: ProductionStack) -> Config:
    return Config(**stack.config_values())


@contextlib.contextmanager
def in_process(body: Callable[[Worker], None], stack: ProductionStack, tracing: Tracing) -> Iterator[None]:
    """A worker's body (fittrack.app.persister's or .dispatcher's, as its process runs it) in a thread of this
    process, so its spans reach the test's in-memory exporter; stopped and closed as the process would be."""
    stopping = threading.Event()
    with contextlib.ExitStack() as closing:
        closing.callback(tracing.shutdown)
        worker = Worker(worker_config(stack), NO_INSTRUMENTS, tracing, closing, logging.getLogger(__name__))
        worker.stop_signal = lambda: stopping
        thread = threading.Thread(target=body, args=(worker,), name=f"test-{body.__name__}")
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            thread.join(timeout=30)


def persister_in_process(stack: ProductionStack, tracing: Tracing):
    return in_process(persist, stack, tracing)


def dispatcher_in_process(stack: ProductionStack, tracing: Tracing):
    return in_process(dispatch, stack, tracing)


def named(exporter, name: str) -> list:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def sync(stubs: Stubs, user, clock, device: str, sequences: list[int], metadata=()) -> list:
    now = minute_start(clock())
    requests = [
        metric_pb2.SyncReadingsRequest(
            batch=metric_pb2.ReadingBatch(
                device_id=device, sequence=sequence, readings=[reading(STEPS, now - 60 * sequence, 10)]
            )
        )
        for sequence in sequences
    ]
    return [r.ack for r in stubs.metrics.SyncReadings(iter(requests), metadata=[*user.auth, *metadata], timeout=30)]


def test_one_synced_batch_is_followed_from_the_devices_call_to_the_persisters_write(stack, tmp_path, clock):
    server_tracing, server_spans = in_memory_tracing(SERVER)
    persister_tracing, persister_spans = in_memory_tracing(PERSISTER)
    server = TracedServer(Config(**server_settings(tmp_path), **stack.config_values()), clock, server_tracing)
    stubs = Stubs.connect(server.address)
    try:
        with persister_in_process(stack, persister_tracing):
            user = register_and_login(stubs, "followed")
            acks = sync(stubs, user, clock, "watch", [1, 2], metadata=[TRACEPARENT])
            assert [ack.status for ack in acks] == [metric_pb2.BatchAck.STATUS_ACCEPTED] * 2
            # The documents were written: the day's total shows both batches.
            eventually(lambda: view_today(stubs, user, STEPS).total, lambda total: total == 20, timeout=30)
            writes = eventually(
                lambda: [s for s in persister_spans.get_finished_spans() if s.name == "fittrack.persist_readings"],
                lambda found: len(found) == 2,
                timeout=30,
            )
    finally:
        stubs.channel.close()
        server.stop()
    (call,) = [s for s in server_spans.get_finished_spans() if s.name == "fittrack.v1.MetricService/SyncReadings"]
    batches = [s for s in server_spans.get_finished_spans() if s.name == "fittrack.reading_batch"]
    assert len(batches) == 2
    # The device's trace goes on in the server's call, each batch's span, and the write that stored it.
    assert hex_trace_id(call) == CALLER_TRACE_ID
    assert hex_span_id(call.parent.span_id) == CALLER_SPAN_ID
    for batch in batches:
        assert batch.parent.span_id == call.context.span_id
        (write,) = [w for w in writes if w.parent.span_id == batch.context.span_id]
        assert hex_trace_id(write) == CALLER_TRACE_ID
        assert write.parent.is_remote  # it came through the record's headers, not this process's context
        assert write.kind == SpanKind.CONSUMER
        assert write.resource.attributes["service.name"] == "fittrack-persister"
        assert write.attributes["messaging.destination.name"] == stack.env["FITTRACK_READINGS_TOPIC"]
        assert write.attributes["messaging.system"] == "kafka"
        # After the batch arrived at the server, and over once the write that holds it is done.
        assert write.start_time >= batch.start_time


def test_a_persister_process_exports_its_write_into_the_batchs_trace_over_otlp(stack, tmp_path, clock):
    """Separate processes, as deployed: the persister exports to a collector over OTLP/gRPC."""
    collector = Collector().start()
    server_tracing, server_spans = in_memory_tracing(SERVER)
    server = TracedServer(Config(**server_settings(tmp_path), **stack.config_values()), clock, server_tracing)
    stubs = Stubs.connect(server.address)
    try:
        stack.start_persister(FITTRACK_OTLP_ENDPOINT=collector.endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
        user = register_and_login(stubs, "exported")
        acks = sync(stubs, user, clock, "ring", [7])
        assert acks[0].status == metric_pb2.BatchAck.STATUS_ACCEPTED
        (batch,) = [s for s in server_spans.get_finished_spans() if s.name == "fittrack.reading_batch"]
        (write,) = eventually(
            lambda: [s for s in collector.spans() if s.name == "fittrack.persist_readings"], bool, timeout=60
        )
    finally:
        stubs.channel.close()
        server.stop()
        stack.stop_persisters()
        collector.stop()
    assert write.service == "fittrack-persister"
    assert write.trace_id == hex_trace_id(batch)
    assert write.parent_span_id == hex_span_id(batch.context.span_id)


def readings_records(stack: ProductionStack, user_id: str) -> list:
    """Every record of the user's batches in the stack's readings topic, read from the start."""
    consumer = KafkaConsumer(bootstrap_servers=stack.env["FITTRACK_KAFKA_BOOTSTRAP"], enable_auto_commit=False)
    try:
        topic = stack.env["FITTRACK_READINGS_TOPIC"]
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records = []
        while any(consumer.position(p) < end for p, end in ends.items()):
            for polled in consumer.poll(timeout_ms=5000).values():
                records += [record for record in polled if record.key == user_id.encode()]
        return records
    finally:
        consumer.close()


def test_with_tracing_off_records_carry_no_headers_even_from_a_caller_that_traces(stack, tmp_path, clock):
    server = RunningServer(Config(**server_settings(tmp_path), **stack.config_values()), clock)
    stubs = Stubs.connect(server.address)
    try:
        user = register_and_login(stubs, "untraced")
        acks = sync(stubs, user, clock, "watch", [1, 2], metadata=[TRACEPARENT])
        assert [ack.status for ack in acks] == [metric_pb2.BatchAck.STATUS_ACCEPTED] * 2
    finally:
        stubs.channel.close()
        server.stop()
    records = readings_records(stack, user.user_id)
    assert len(records) == 2
    assert [record.headers for record in records] == [[], []]


def test_with_tracing_on_each_record_carries_its_batchs_traceparent(stack, tmp_path, clock):
    tracing, spans = in_memory_tracing(SERVER)
    server = TracedServer(Config(**server_settings(tmp_path), **stack.config_values()), clock, tracing)
    stubs = Stubs.connect(server.address)
    try:
        user = register_and_login(stubs, "traced")
        sync(stubs, user, clock, "watch", [1])
    finally:
        stubs.channel.close()
        server.stop()
    (batch,) = [s for s in spans.get_finished_spans() if s.name == "fittrack.reading_batch"]
    (record,) = readings_records(stack, user.user_id)
    version, trace_id, parent_id, flags = dict(record.headers)["traceparent"].decode().split("-")
    assert (version, trace_id, parent_id) == ("00", hex_trace_id(batch), hex_span_id(batch.context.span_id))
    assert int(flags, 16) & 1  # sampled: the persister records its part of the trace too


def test_a_queued_notification_is_followed_into_the_dispatchers_handling(stack):
    config = worker_config(stack)
    ensure_kafka_topics(config, ensure_topics)
    sender_tracing, _ = in_memory_tracing(PERSISTER)
    dispatcher_tracing, dispatcher_spans = in_memory_tracing(DISPATCHER)
    queue = notification_queue(config)
    try:
        with dispatcher_in_process(stack, dispatcher_tracing):
            notification = Notification(
                uuid.uuid4().hex, "no-such-user", NotificationKind.REPORT_READY, "Your report", "is ready", _now(), "k1"
            )
            with sender_tracing.tracer("test").start_as_current_span("a goal met") as sent:
                queue.send([notification])
            (handled,) = eventually(
                lambda: named(dispatcher_spans, "fittrack.dispatch_notifications"), bool, timeout=30
            )
    finally:
        queue.close()
        sender_tracing.shutdown()
    assert handled.context.trace_id == sent.get_span_context().trace_id
    assert handled.parent.span_id == sent.get_span_context().span_id
    assert handled.resource.attributes["service.name"] == "fittrack-dispatcher"


def test_a_goal_met_by_a_synced_batch_is_followed_from_the_devices_call_to_the_notifications_delivery(
    stack, tmp_path, clock
):
    server_tracing, _ = in_memory_tracing(SERVER)
    persister_tracing, persister_spans = in_memory_tracing(PERSISTER)
    dispatcher_tracing, dispatcher_spans = in_memory_tracing(DISPATCHER)
    server = TracedServer(Config(**server_settings(tmp_path), **stack.config_values()), clock, server_tracing)
    stubs = Stubs.connect(server.address)
    try:
        with persister_in_process(stack, persister_tracing), dispatcher_in_process(stack, dispatcher_tracing):
            user = register_and_login(stubs, "achiever")
            stubs.goals.CreateGoal(
                goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=15),
                metadata=user.auth,
            )
            sync(stubs, user, clock, "watch", [1, 2], metadata=[TRACEPARENT])
            (delivered,) = eventually(
                lambda: named(dispatcher_spans, "fittrack.dispatch_notifications"), bool, timeout=30
            )
            listed = eventually(
                lambda: (
                    stubs.notifications.ListNotifications(
                        notification_pb2.ListNotificationsRequest(), metadata=user.auth
                    ).notifications
                ),
                bool,
            )
    finally:
        stubs.channel.close()
        server.stop()
    assert [n.kind for n in listed] == [notification_pb2.NOTIFICATION_KIND_GOAL_MET]
    checks = named(persister_spans, "fittrack.goal_check")
    writes = {span.context.span_id: span for span in named(persister_spans, "fittrack.persist_readings")}
    (check,) = [span for span in checks if span.context.span_id == delivered.parent.span_id]
    # device's call -> batch -> write -> goal check -> delivery, one trace across three processes' parts
    assert check.parent.span_id in writes
    assert hex_trace_id(check) == hex_trace_id(delivered) == CALLER_TRACE_ID


def _now() -> datetime:
    return datetime.now(UTC)
