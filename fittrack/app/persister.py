"""`python -m fittrack.app.persister` (or `fittrack-persister`): one persister process of the production profile."""

from __future__ import annotations

import logging
import os
import sys

from fittrack.app.metrics_endpoint import start_metrics, stop_metrics
from fittrack.app.process import production_config, stop_on_signals
from fittrack.app.wiring import build_persister, ensure_kafka_topics
from fittrack.core.adapters.kafka import ensure_topics
from fittrack.core.domain.errors import Unavailable
from fittrack.workers.persister import KafkaPersister
from fittrack.workers.runtime import Every, make_consumer

# The worker's own logger: its lines and the loop's read as one process's.
log = logging.getLogger("fittrack.workers.persister")


def main() -> int:
    config = production_config(
        "fittrack-persister", "Store the readings the servers put on Kafka into the metric store (production profile)."
    )
    if config is None:
        return 2
    exporting = start_metrics(config, "fittrack-persister")
    if exporting is None:
        return 1
    instruments, endpoint = exporting
    try:
        return _run(config, instruments)
    finally:
        stop_metrics(endpoint)


def _run(config, instruments) -> int:
    try:
        ensure_kafka_topics(config, ensure_topics)
        parts = build_persister(config, instruments=instruments)
    except Unavailable as error:  # a service it cannot start without, after waiting for it
        log.error("%s", error)
        return 1
    consumer = make_consumer(config, config.readings_topic, config.persister_group, max_poll_records=500)
    stopping = stop_on_signals()
    worker = KafkaPersister(
        consumer,
        parts.persister,
        parts.copies,
        # FerretDB builds a bare table again when its collection was dropped; the indexes follow within this.
        [Every(config.store_upkeep_seconds, parts.store_upkeep)],
        int(os.environ.get("FITTRACK_PERSISTER_CRASH_AFTER_WRITES", "0")),
        instruments=instruments,
    )
    log.info("persister consuming %s as group %s", config.readings_topic, config.persister_group)
    try:
        worker.run(stopping)
    finally:
        consumer.close(autocommit=False)
        for close in reversed(parts.closers):
            close()
    log.info("persister stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
