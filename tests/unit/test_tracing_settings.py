"""FITTRACK_OTLP_ENDPOINT and FITTRACK_TRACE_SAMPLE_RATIO: the forms taken, the messages for the rest, and what
the ratio decides."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fittrack.app.config import Config, ConfigError
from fittrack.app.tracing import SERVER, build_tracing
from fittrack.core.adapters.trace_context import context_from


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("", None),
        ("127.0.0.1:4317", ("127.0.0.1:4317", False)),
        ("http://collector.internal:4317", ("collector.internal:4317", False)),
        ("https://collector.example.com:4317/", ("collector.example.com:4317", True)),
        ("[::1]:4317", ("[::1]:4317", False)),
    ],
)
def test_an_otlp_endpoint_is_a_host_and_port_with_an_optional_scheme_saying_whether_tls(endpoint, target):
    assert Config.from_env({"FITTRACK_OTLP_ENDPOINT": endpoint}).otlp_target() == target


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("collector", "it needs a host and a port"),
        ("grpc://collector:4317", "the scheme must be http or https, not 'grpc'"),
        ("http://collector:4318/v1/traces", "OTLP/gRPC takes no path"),
        ("collector:0", "port 0 is no collector's port"),
    ],
)
def test_a_malformed_otlp_endpoint_is_refused_naming_the_setting_and_why(endpoint, why):
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"FITTRACK_OTLP_ENDPOINT": endpoint})
    assert str(refused.value).startswith("FITTRACK_OTLP_ENDPOINT must be host:port")
    assert why in str(refused.value)


@pytest.mark.parametrize("ratio", ["-0.1", "1.5"])
def test_a_sample_ratio_outside_0_to_1_is_refused(ratio):
    with pytest.raises(ConfigError, match="FITTRACK_TRACE_SAMPLE_RATIO must be 0 to 1"):
        Config.from_env({"FITTRACK_TRACE_SAMPLE_RATIO": ratio})


def test_without_an_endpoint_tracing_is_off_and_its_spans_record_nothing():
    tracing = build_tracing(Config(), SERVER)
    assert not tracing.enabled
    assert not tracing.tracer("t").start_span("a call").is_recording()


def test_the_ratio_decides_for_a_callers_trace_too_whatever_its_sampled_flag_says():
    sampled = context_from([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")])
    unsampled = context_from([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")])
    none = build_tracing(Config(trace_sample_ratio=0.0), SERVER, SimpleSpanProcessor(InMemorySpanExporter()))
    # A device that flags every call sampled does not make a server that samples nothing pay for its spans.
    assert not none.tracer("t").start_span("a new trace").is_recording()
    assert not none.tracer("t").start_span("a joined call", context=sampled).is_recording()
    none.shutdown()
    exporter = InMemorySpanExporter()
    every = build_tracing(Config(trace_sample_ratio=1.0), SERVER, SimpleSpanProcessor(exporter))
    joined = every.tracer("t").start_span("a joined call", context=unsampled)
    assert joined.is_recording()  # and one that asks for nothing is still recorded when the ratio says so
    joined.end()
    every.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "fittrack-server"
    assert trace.format_trace_id(span.context.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736"
