"""`python -m fittrack.app.persister` (or `fittrack-persister`): one persister process of the production profile."""

from __future__ import annotations

import os
import sys

from fittrack.app.process import Worker, close_all, run_worker
from fittrack.app.stores import ensure_kafka_topics
from fittrack.app.tracing import PERSISTER
from fittrack.app.worker_parts import build_persister
from fittrack.core.adapters.kafka import ensure_topics
from fittrack.workers.persister import KafkaPersister
from fittrack.workers.runtime import Every, make_consumer


def persist(worker: Worker) -> None:
    config = worker.config
    tracer = worker.tracing.tracer("fittrack.workers.persister")
    ensure_kafka_topics(config, ensure_topics)
    parts = build_persister(config, tracer=tracer, instruments=worker.instruments)
    worker.closing.callback(close_all, parts.closers)
    consumer = make_consumer(config, config.readings_topic, config.persister_group, max_poll_records=500)
    worker.closing.callback(consumer.close, autocommit=False)
    loop = KafkaPersister(
        consumer,
        parts.persister,
        parts.copies,
        # FerretDB builds a bare table again when its collection was dropped; the indexes follow within this.
        [Every(config.store_upkeep_seconds, parts.store_upkeep)],
        int(os.environ.get("FITTRACK_PERSISTER_CRASH_AFTER_WRITES", "0")),
        tracer=tracer,
        instruments=worker.instruments,
    )
    stopping = worker.stop_signal()
    worker.log.info("persister consuming %s as group %s", config.readings_topic, config.persister_group)
    loop.run(stopping)


def main() -> int:
    return run_worker(
        "fittrack-persister",
        "Store the readings the servers put on Kafka into the metric store (production profile).",
        PERSISTER,
        "persister",
        persist,
    )


if __name__ == "__main__":
    sys.exit(main())
