"""Tracing of the server's calls (embedded profile): a span per RPC with its status, joined to a caller's trace,
a span per synced batch, real OTLP export, and a bad endpoint that refuses the start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode

from fittrack.app.config import Config
from fittrack.app.tracing import SERVER
from fittrack.generated.v1 import account_pb2, common_pb2, metric_pb2
from tests.e2e.test_startup import PRODUCTION, PROGRAMS, run
from tests.otlp import Collector, in_memory_tracing
from tests.support import (
    PASSWORD,
    Stubs,
    eventually,
    minute_start,
    reading,
    register_and_login,
    rpc_error,
    server_settings,
)
from tests.traced import CALLER_SPAN_ID, CALLER_TRACE_ID, TRACEPARENT, TracedServer, hex_span_id, hex_trace_id

ROOT = Path(__file__).resolve().parents[2]
STEPS = common_pb2.METRIC_KIND_STEPS


@pytest.fixture
def exporter(tmp_path, clock):
    tracing, exporter = in_memory_tracing(SERVER)
    server = TracedServer(Config(**server_settings(tmp_path)), clock, tracing)
    exporter.server = server
    yield exporter
    server.stop()


@pytest.fixture
def traced_stubs(exporter):
    stubs = Stubs.connect(exporter.server.address)
    yield stubs
    stubs.channel.close()


def spans_named(exporter, name: str):
    return [span for span in exporter.get_finished_spans() if span.name == name]


def test_every_call_has_a_server_span_with_its_method_and_the_status_code_the_client_got(exporter, traced_stubs):
    user = register_and_login(traced_stubs, "tracy")
    error = rpc_error(
        lambda: traced_stubs.accounts.Login(account_pb2.LoginRequest(username="tracy", password="wrong password"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Authentication fails inside the span too: the span holds the whole call.
    request = metric_pb2.ViewMetricRequest(metric=STEPS)
    denied = rpc_error(lambda: traced_stubs.metrics.ViewMetric(request, metadata=[("authorization", "Bearer nope")]))
    assert denied.code() == grpc.StatusCode.UNAUTHENTICATED
    assert user.login.access_token

    logins = eventually(lambda: spans_named(exporter, "fittrack.v1.AccountService/Login"), lambda s: len(s) == 2)
    codes = sorted(span.attributes["rpc.grpc.status_code"] for span in logins)
    assert codes == [grpc.StatusCode.OK.value[0], grpc.StatusCode.UNAUTHENTICATED.value[0]]
    for span in logins:
        assert span.kind == SpanKind.SERVER
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "fittrack.v1.AccountService"
        assert span.attributes["rpc.method"] == "Login"
        assert span.resource.attributes["service.name"] == "fittrack-server"
        # A wrong password is the caller's error, not the server's: the span is not marked failed.
        assert span.status.status_code == StatusCode.UNSET
    (view,) = eventually(lambda: spans_named(exporter, "fittrack.v1.MetricService/ViewMetric"), bool)
    assert view.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_a_method_the_server_does_not_have_gets_no_span(exporter, traced_stubs):
    call = traced_stubs.channel.unary_unary("/fittrack.v1.AccountService/NoSuchMethod")
    assert rpc_error(lambda: call(b"")).code() == grpc.StatusCode.UNIMPLEMENTED
    register_and_login(traced_stubs, "after")  # a span that shows the exporter is listening
    eventually(lambda: spans_named(exporter, "fittrack.v1.AccountService/Login"), bool)
    assert not [span for span in exporter.get_finished_spans() if "NoSuchMethod" in span.name]


def test_health_checks_are_not_traced(exporter, traced_stubs):
    health = health_pb2_grpc.HealthStub(traced_stubs.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    register_and_login(traced_stubs, "healthy")
    eventually(lambda: spans_named(exporter, "fittrack.v1.AccountService/Login"), bool)
    assert not [span for span in exporter.get_finished_spans() if "Health" in span.name]


def test_a_call_carrying_a_traceparent_joins_the_callers_trace(exporter, traced_stubs):
    traced_stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username="joiner", password=PASSWORD, profile=account_pb2.ProfileFields(time_zone="UTC")
        ),
        metadata=[TRACEPARENT],
    )
    (span,) = eventually(lambda: spans_named(exporter, "fittrack.v1.AccountService/Register"), bool)
    assert hex_trace_id(span) == CALLER_TRACE_ID
    assert hex_span_id(span.parent.span_id) == CALLER_SPAN_ID
    assert span.parent.is_remote


def test_a_malformed_traceparent_starts_a_new_trace_and_the_call_succeeds(exporter, traced_stubs):
    traced_stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username="garbled", password=PASSWORD, profile=account_pb2.ProfileFields(time_zone="UTC")
        ),
        metadata=[("traceparent", "00-not-a-trace-01")],
    )
    (span,) = eventually(lambda: spans_named(exporter, "fittrack.v1.AccountService/Register"), bool)
    assert span.parent is None
    assert span.attributes["rpc.grpc.status_code"] == 0


def test_each_synced_batch_has_its_own_span_under_the_call_and_says_how_it_ended(exporter, traced_stubs, clock):
    user = register_and_login(traced_stubs, "syncer")
    now = minute_start(clock())
    future = minute_start(clock() + timedelta(days=3))
    requests = [
        metric_pb2.SyncReadingsRequest(
            batch=metric_pb2.ReadingBatch(device_id="watch", sequence=1, readings=[reading(STEPS, now, 10)])
        ),
        metric_pb2.SyncReadingsRequest(
            batch=metric_pb2.ReadingBatch(device_id="watch", sequence=2, readings=[reading(STEPS, future, 10)])
        ),
        metric_pb2.SyncReadingsRequest(
            batch=metric_pb2.ReadingBatch(device_id="watch", sequence=1, readings=[reading(STEPS, now, 10)])
        ),
    ]
    acks = [r.ack for r in traced_stubs.metrics.SyncReadings(iter(requests), metadata=[*user.auth, TRACEPARENT])]
    assert [ack.status for ack in acks] == [
        metric_pb2.BatchAck.STATUS_ACCEPTED,
        metric_pb2.BatchAck.STATUS_REJECTED,
        metric_pb2.BatchAck.STATUS_DUPLICATE,
    ]
    (call,) = eventually(lambda: spans_named(exporter, "fittrack.v1.MetricService/SyncReadings"), bool)
    assert call.attributes["rpc.grpc.status_code"] == 0
    assert hex_trace_id(call) == CALLER_TRACE_ID
    batches = eventually(lambda: spans_named(exporter, "fittrack.reading_batch"), lambda s: len(s) == 3)
    by_order = sorted(batches, key=lambda span: span.start_time)
    assert [(s.attributes["fittrack.batch.sequence"], s.attributes["fittrack.batch.outcome"]) for s in by_order] == [
        (1, "accepted"),
        (2, "rejected"),
        (1, "duplicate"),
    ]
    assert by_order[0].attributes["fittrack.batch.readings_accepted"] == 1
    for span in batches:
        assert span.parent.span_id == call.context.span_id
        assert span.context.trace_id == call.context.trace_id
        assert span.attributes["fittrack.device_id"] == "watch"
        # Each ends with its ack, within the call.
        assert call.start_time <= span.start_time <= span.end_time <= call.end_time


ENDPOINT_MESSAGE = "FITTRACK_OTLP_ENDPOINT must be host:port, http://host:port or https://host:port"


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("FITTRACK_", "OTEL_"))}
    return {**clean, "FITTRACK_DATA_DIR": str(tmp_path / "var"), **settings}


@pytest.mark.parametrize(
    "endpoint",
    ["collector", "ftp://collector:4317", "http://collector:4317/v1/traces", "collector:70000"],
)
def test_a_malformed_otlp_endpoint_refuses_the_servers_start_with_a_message_naming_the_setting(tmp_path, endpoint):
    result = run("fittrack.app.server", environment(tmp_path, FITTRACK_OTLP_ENDPOINT=endpoint))
    assert result.returncode == 2
    assert f"fittrack-server: {ENDPOINT_MESSAGE}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("program", ["fittrack-persister", "fittrack-dispatcher", "fittrack-evaluator"])
def test_every_worker_process_refuses_a_malformed_otlp_endpoint_too(tmp_path, program):
    env = environment(tmp_path, **PRODUCTION, FITTRACK_OTLP_ENDPOINT="collector")
    result = run(PROGRAMS[program], env)
    assert result.returncode == 2
    assert f"{program}: {ENDPOINT_MESSAGE}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_server_process_exports_its_spans_over_otlp_and_flushes_them_when_it_stops(tmp_path):
    """Through the real exporter, batch processor and process stop: nothing in-memory."""
    collector = Collector().start()
    try:
        port = _free_port()
        env = environment(
            tmp_path,
            FITTRACK_LISTEN=f"127.0.0.1:{port}",
            FITTRACK_BCRYPT_ROUNDS="4",
            FITTRACK_OTLP_ENDPOINT=f"http://{collector.endpoint}",
            # Longer than the test: only the flush at the stop can deliver the spans.
            OTEL_BSP_SCHEDULE_DELAY="600000",
        )
        process = subprocess.Popen([sys.executable, "-m", "fittrack.app.server"], cwd=ROOT, env=env)
        try:
            stubs = eventually(lambda: _connected(f"127.0.0.1:{port}"), lambda s: s is not None, timeout=30)
            stubs.accounts.Register(
                account_pb2.RegisterRequest(
                    username="exported", password=PASSWORD, profile=account_pb2.ProfileFields(time_zone="UTC")
                ),
                metadata=[TRACEPARENT],
            )
            stubs.channel.close()
            assert not collector.spans()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert process.returncode == 0
        (span,) = [s for s in collector.spans() if s.name == "fittrack.v1.AccountService/Register"]
        assert span.service == "fittrack-server"
        assert (span.trace_id, span.parent_span_id) == (CALLER_TRACE_ID, CALLER_SPAN_ID)
        assert span.attributes["rpc.grpc.status_code"] == 0
    finally:
        collector.stop()


def test_without_an_endpoint_a_server_exports_nothing_even_with_the_sdks_own_endpoint_variable_set(tmp_path):
    collector = Collector().start()
    try:
        port = _free_port()
        env = environment(
            tmp_path,
            FITTRACK_LISTEN=f"127.0.0.1:{port}",
            FITTRACK_BCRYPT_ROUNDS="4",
            # Set on a host for another program: it must not turn Fittrack's tracing on.
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{collector.endpoint}",
        )
        process = subprocess.Popen([sys.executable, "-m", "fittrack.app.server"], cwd=ROOT, env=env)
        try:
            stubs = eventually(lambda: _connected(f"127.0.0.1:{port}"), lambda s: s is not None, timeout=30)
            register_and_login(stubs, "untraced")
            stubs.channel.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert process.returncode == 0
        assert collector.requests == 0
    finally:
        collector.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _connected(address: str) -> Stubs | None:
    stubs = Stubs.connect(address)
    try:
        health = health_pb2_grpc.HealthStub(stubs.channel)
        if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
            return stubs
    except grpc.RpcError:
        pass
    stubs.channel.close()
    return None
