"""An evaluation tick is a span, current while its work runs: the nudges it queues carry its trace context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fittrack.core.adapters.trace_context import context_from, trace_headers
from fittrack.core.services.evaluation import RunSummary
from fittrack.workers.evaluator import EvaluationSchedule

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class Evaluator:
    """Queues a nudge as the real one does: the queue writes the current trace context into its headers."""

    def __init__(self) -> None:
        self.headers = []

    def run_due(self, since: datetime, until: datetime) -> RunSummary:
        self.headers.append(trace_headers())
        return RunSummary(slots=2, users=5, notifications=3)


def test_a_tick_is_a_span_that_is_current_while_it_evaluates_and_says_what_it_did():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    evaluator = Evaluator()
    schedule = EvaluationSchedule(evaluator, lambda: NOW, 30, timedelta(), tracer=provider.get_tracer("t"))
    schedule.tick()
    (span,) = exporter.get_finished_spans()
    assert span.name == "fittrack.evaluation_tick"
    assert span.attributes["fittrack.evaluation.slots"] == 2
    assert span.attributes["fittrack.evaluation.notifications"] == 3
    (headers,) = evaluator.headers
    assert trace.get_current_span(context_from(headers)).get_span_context().span_id == span.context.span_id


def test_without_a_tracer_a_tick_queues_its_nudges_without_headers():
    evaluator = Evaluator()
    EvaluationSchedule(evaluator, lambda: NOW, 30, timedelta()).tick()
    assert evaluator.headers == [None]
