"""W3C trace context (traceparent, tracestate) in Kafka record headers and gRPC metadata.

What goes between Fittrack's processes is always the W3C format, written with this propagator rather than the
process-wide one OpenTelemetry sets from OTEL_PROPAGATORS: an environment variable must not change what a
persister can read from a server. No trace context (tracing off, or nothing traced) writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
FIELDS = frozenset(_W3C.fields)


def trace_headers(context: Context | None = None) -> list[tuple[str, bytes]] | None:
    """Kafka record headers carrying the span current in `context` (default: the caller's); None without one.

    This runs for every batch a server publishes, traced or not: without a span it is one context lookup.
    """
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context)
    return [(name, value.encode("ascii")) for name, value in carrier.items()]


def context_from(pairs: Iterable[tuple[str, str | bytes]] | None) -> Context | None:
    """The trace context in Kafka headers or gRPC metadata; None when they carry no valid one.

    A malformed traceparent is no context (the W3C rule), so a bad header starts a new trace, never an error.
    """
    carrier = {}
    for name, value in pairs or ():
        if name in FIELDS:
            carrier[name] = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if "traceparent" not in carrier:
        return None
    context = _W3C.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None
