"""A real server whose tracing the test chooses (tests/otlp.py's in-memory one, say)."""

from __future__ import annotations

from fittrack.app.config import Config
from fittrack.app.server import create_server
from fittrack.app.tracing import Tracing
from tests.support import Clock, RunningServer

# A caller's trace context, as a W3C traceparent: version, trace id, parent span id, flags (sampled).
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = ("traceparent", f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")


class TracedServer(RunningServer):
    def __init__(self, config: Config, clock: Clock, tracing: Tracing) -> None:
        self.tracing = tracing
        super().__init__(config, clock)

    async def _create(self):
        return create_server(self.config, self.clock, self.tracing)


def hex_trace_id(span) -> str:
    return format(span.context.trace_id, "032x")


def hex_span_id(span_id: int) -> str:
    return format(span_id, "016x")
