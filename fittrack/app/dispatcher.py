"""`python -m fittrack.app.dispatcher` (or `fittrack-dispatcher`): one dispatcher process of the production profile."""

from __future__ import annotations

import logging
import sys
import threading

from fittrack.app.metrics_endpoint import start_metrics, stop_metrics
from fittrack.app.process import production_config, stop_on_signals
from fittrack.app.wiring import build_dispatcher, ensure_kafka_topics
from fittrack.core.adapters.kafka import ensure_topics
from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue
from fittrack.core.domain.errors import Unavailable
from fittrack.workers.dispatcher import KafkaDispatcher, run_retries
from fittrack.workers.draining import CHUNK
from fittrack.workers.runtime import make_consumer

# The worker's own logger: its lines and the loop's read as one process's.
log = logging.getLogger("fittrack.workers.dispatcher")


def main() -> int:
    config = production_config(
        "fittrack-dispatcher",
        "Deliver notifications: store each once, push it, retry, keep dead letters (production profile).",
    )
    if config is None:
        return 2
    exporting = start_metrics(config, "fittrack-dispatcher")
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
        parts = build_dispatcher(config, instruments=instruments)
    except Unavailable as error:  # a service it cannot start without, after waiting for it
        log.error("%s", error)
        return 1
    # A record holds up to PER_RECORD notifications: a poll is at most CHUNK of them, one short transaction.
    per_poll = max(1, CHUNK // KafkaNotificationQueue.PER_RECORD)
    consumer = make_consumer(config, config.notifications_topic, config.dispatcher_group, max_poll_records=per_poll)
    stopping = stop_on_signals()
    retries = None
    if parts.dispatcher.pushes:
        retries = threading.Thread(target=run_retries, args=(parts.dispatcher, stopping), name="push-retries")
        retries.start()
    log.info(
        "dispatcher consuming %s as group %s; pushes %s",
        config.notifications_topic,
        config.dispatcher_group,
        "to the webhook" if parts.dispatcher.pushes else "off (no FITTRACK_WEBHOOK_URL)",
    )
    try:
        KafkaDispatcher(consumer, parts.dispatcher, instruments=instruments).run(stopping)
    finally:
        stopping.set()
        if retries is not None:
            retries.join()
        consumer.close(autocommit=False)
        for close in reversed(parts.closers):
            close()
    log.info("dispatcher stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
