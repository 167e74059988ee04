"""Tracing in tests: an in-memory exporter's tracing for in-process parts, and a real OTLP/gRPC collector (made from
opentelemetry-proto's generated service) that separate processes export to."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fittrack.app.config import Config
from fittrack.app.tracing import Tracing, build_tracing


def in_memory_tracing(service: str, config: Config | None = None) -> tuple[Tracing, InMemorySpanExporter]:
    """The process's tracing as `service`, each span handed to the returned exporter as it ends."""
    exporter = InMemorySpanExporter()
    return build_tracing(config or Config(), service, SimpleSpanProcessor(exporter)), exporter


@dataclass(frozen=True)
class ExportedSpan:
    """One span as a collector received it."""

    service: str
    name: str
    trace_id: str  # hex, as a W3C traceparent writes it
    span_id: str
    parent_span_id: str  # "" for a root
    kind: int
    attributes: dict


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on a loopback port, keeping every span it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ExportedSpan] = []
        self.requests = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"

    def Export(self, request, context):  # noqa: N802 - the generated service's name
        received = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ExportedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        )
                    )
        with self._lock:
            self._spans.extend(received)
            self.requests += 1
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self._spans)

    def start(self) -> Collector:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None
