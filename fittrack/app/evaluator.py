"""`python -m fittrack.app.evaluator` (or `fittrack-evaluator`): one goal evaluator of the production profile."""

from __future__ import annotations

import logging
import sys

from fittrack.app.metrics_endpoint import start_metrics, stop_metrics
from fittrack.app.process import production_config, stop_on_signals
from fittrack.app.wiring import build_evaluator
from fittrack.core.domain.errors import Unavailable

# The worker's own logger: its lines and the loop's read as one process's.
log = logging.getLogger("fittrack.workers.evaluator")


def main() -> int:
    config = production_config(
        "fittrack-evaluator", "Evaluate goals at the configured local times and send the nudges (production profile)."
    )
    if config is None:
        return 2
    exporting = start_metrics(config, "fittrack-evaluator")
    if exporting is None:
        return 1
    instruments, endpoint = exporting
    try:
        return _run(config, instruments)
    finally:
        stop_metrics(endpoint)


def _run(config, instruments) -> int:
    try:
        parts = build_evaluator(config, instruments=instruments)
    except Unavailable as error:  # a service it cannot start without
        log.error("%s", error)
        return 1
    stopping = stop_on_signals()
    parts.schedule.start()
    log.info("evaluator running: slots %s, every %.0f s", config.evaluation_times, config.evaluation_tick_seconds)
    stopping.wait()
    parts.schedule.stop()
    for close in reversed(parts.closers):
        close()
    log.info("evaluator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
