"""The goal evaluator: looks for due slots on an APScheduler interval job and evaluates them.

Every tick evaluates the slots whose moment fell between the previous tick and
now (GoalEvaluator.run_due), so a slot is caught whatever the tick interval,
and a failed tick's window is tried again by the next one. At start-up it
looks back FITTRACK_EVALUATION_CATCH_UP_MINUTES, so a restart just after a
slot still evaluates it; evaluating a slot twice makes the same idempotency
keys, which the dispatcher drops.

Embedded profile: runs inside the server process (EvaluatorInBackground).
Production: `python -m fittrack.app.evaluator` (fittrack-evaluator), one process or
several sharing the work through claims (fittrack/core/services/evaluation.WorkClaims);
its notifications go to the `notifications` topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from opentelemetry import trace

from fittrack.core.services.evaluation import GoalEvaluator, RunSummary

log = logging.getLogger(__name__)


class DueWork(Protocol):
    """Other daily work on the same tick and window (password expiry notices)."""

    def run_due(self, since: datetime, until: datetime) -> object: ...


class EvaluationSchedule:
    def __init__(
        self,
        evaluator: GoalEvaluator,
        clock: Callable[[], datetime],
        tick_seconds: float,
        catch_up: timedelta,
        also: Sequence[DueWork] = (),
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.evaluator = evaluator
        self._tracer = tracer or trace.NoOpTracer()
        self.also = list(also)
        self._now = clock
        self._tick_seconds = tick_seconds
        self._evaluated_until = clock() - catch_up
        self._scheduler: BackgroundScheduler | None = None
        self.ticks = 0

    def tick(self) -> RunSummary:
        """Evaluate what fell due since the last successful tick."""
        until = self._now()
        # Current while it runs: the nudges it queues carry its context, so the dispatcher's spans join it.
        with self._tracer.start_as_current_span("fittrack.evaluation_tick") as span:
            summary = self.evaluator.run_due(self._evaluated_until, until)
            for work in self.also:
                work.run_due(self._evaluated_until, until)
            span.set_attributes(
                {
                    "fittrack.evaluation.slots": summary.slots,
                    "fittrack.evaluation.users": summary.users,
                    "fittrack.evaluation.notifications": summary.notifications,
                }
            )
        # Only after success: a tick that failed leaves its window to the next one.
        self._evaluated_until = until
        self.ticks += 1
        return summary

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("goal evaluation failed; the next tick tries the same slots again")

    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        # One tick at a time, and a late tick runs once rather than once per missed interval.
        scheduler.add_job(
            self._safe_tick,
            IntervalTrigger(seconds=self._tick_seconds),
            id="evaluate-due-slots",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now().astimezone(),
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


class EvaluatorInBackground:
    """The schedule as one of the embedded server's background parts."""

    def __init__(self, schedule: EvaluationSchedule) -> None:
        self.schedule = schedule

    async def start(self) -> None:
        self.schedule.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.schedule.stop)
