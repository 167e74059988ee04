"""`python -m fittrack.app.evaluator` (or `fittrack-evaluator`): one goal evaluator of the production profile."""

from __future__ import annotations

import sys

from fittrack.app.process import Worker, close_all, run_worker
from fittrack.app.tracing import EVALUATOR
from fittrack.app.worker_parts import build_evaluator


def evaluate(worker: Worker) -> None:
    config = worker.config
    tracer = worker.tracing.tracer("fittrack.workers.evaluator")
    parts = build_evaluator(config, tracer=tracer, instruments=worker.instruments)
    worker.closing.callback(close_all, parts.closers)
    stopping = worker.stop_signal()
    parts.schedule.start()
    worker.closing.callback(parts.schedule.stop)
    worker.log.info(
        "evaluator running: slots %s, every %.0f s", config.evaluation_times, config.evaluation_tick_seconds
    )
    stopping.wait()


def main() -> int:
    return run_worker(
        "fittrack-evaluator",
        "Evaluate goals at the configured local times and send the nudges (production profile).",
        EVALUATOR,
        "evaluator",
        evaluate,
    )


if __name__ == "__main__":
    sys.exit(main())
