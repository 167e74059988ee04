"""Tracing: the process's TracerProvider, made once here and handed to the parts as tracers.

Off (no FITTRACK_OTLP_ENDPOINT) every part gets OpenTelemetry's no-op tracer: starting a span returns a shared
non-recording one, and nothing is exported. On, spans are batched (BatchSpanProcessor) and exported over
OTLP/gRPC to the collector; `shutdown` exports what is left when the process stops.

Nothing here sets OpenTelemetry's global provider: a part traces only with the tracer it was given. The
current span is still in OpenTelemetry's context (contextvars), so `opentelemetry.trace.get_current_span()`
reads it anywhere, for log lines among others.
"""

from __future__ import annotations

import logging
import os
import socket

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from fittrack.app.config import Config

log = logging.getLogger(__name__)

# service.name of each process role.
SERVER = "fittrack-server"
PERSISTER = "fittrack-persister"
DISPATCHER = "fittrack-dispatcher"
EVALUATOR = "fittrack-evaluator"

# How long an export may take before it is given up: it runs on the processor's thread, and at process stop
# a collector that does not answer would otherwise hold the stop up for the exporter's default 10 s.
EXPORT_TIMEOUT_SECONDS = 5.0


class Tracing:
    """The process's tracer provider; `tracer(name)` for each part, `shutdown()` once at process stop."""

    def __init__(self, provider: trace.TracerProvider, enabled: bool) -> None:
        self.provider = provider
        self.enabled = enabled

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name)

    def shutdown(self) -> None:
        """Export the spans still held, then stop; a second call does nothing."""
        if self.enabled:
            self.enabled = False
            self.provider.shutdown()


def tracing_off() -> Tracing:
    return Tracing(trace.NoOpTracerProvider(), enabled=False)


def build_tracing(config: Config, service: str, processor: SpanProcessor | None = None) -> Tracing:
    """The tracing FITTRACK_OTLP_ENDPOINT asks for, as `service`; tests pass their own processor (an in-memory
    exporter's), which turns tracing on without an endpoint."""
    target = config.otlp_target()
    if target is None and processor is None:
        return tracing_off()
    resource = Resource.create({SERVICE_NAME: service, SERVICE_INSTANCE_ID: f"{socket.gethostname()}:{os.getpid()}"})
    # Within a process a span follows its parent. A parent from elsewhere (a device's traceparent, a record's
    # headers) is decided by the ratio, not by its sampled flag: a device must not choose what this server pays
    # for. The ratio decides on the trace id, so every process of one trace decides alike: a batch's trace
    # stays whole from the server to the persister.
    ratio = TraceIdRatioBased(config.trace_sample_ratio)
    sampler = ParentBased(ratio, remote_parent_sampled=ratio, remote_parent_not_sampled=ratio)
    provider = TracerProvider(resource=resource, sampler=sampler)
    if processor is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint, tls = target
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=not tls, timeout=EXPORT_TIMEOUT_SECONDS)
        processor = BatchSpanProcessor(exporter)
        log.info("tracing: exporting spans as %s to %s over OTLP/gRPC%s", service, endpoint, " (TLS)" if tls else "")
    provider.add_span_processor(processor)
    return Tracing(provider, enabled=True)
