"""`python -m fittrack.app.dispatcher` (or `fittrack-dispatcher`): one dispatcher process of the production profile."""

from __future__ import annotations

import sys
import threading

from fittrack.app.process import Worker, close_all, run_worker
from fittrack.app.stores import ensure_kafka_topics
from fittrack.app.tracing import DISPATCHER
from fittrack.app.worker_parts import build_dispatcher
from fittrack.core.adapters.kafka import ensure_topics
from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue
from fittrack.workers.dispatcher import KafkaDispatcher, run_retries
from fittrack.workers.draining import CHUNK
from fittrack.workers.runtime import make_consumer


def dispatch(worker: Worker) -> None:
    config = worker.config
    ensure_kafka_topics(config, ensure_topics)
    parts = build_dispatcher(config, instruments=worker.instruments)
    worker.closing.callback(close_all, parts.closers)
    # A record holds up to PER_RECORD notifications: a poll is at most CHUNK of them, one short transaction.
    per_poll = max(1, CHUNK // KafkaNotificationQueue.PER_RECORD)
    consumer = make_consumer(config, config.notifications_topic, config.dispatcher_group, max_poll_records=per_poll)
    worker.closing.callback(consumer.close, autocommit=False)
    stopping = worker.stop_signal()
    if parts.dispatcher.pushes:
        retries = threading.Thread(target=run_retries, args=(parts.dispatcher, stopping), name="push-retries")
        retries.start()
        worker.closing.callback(retries.join)
        worker.closing.callback(stopping.set)  # first on the way out: the retries end before the stores close
    worker.log.info(
        "dispatcher consuming %s as group %s; pushes %s",
        config.notifications_topic,
        config.dispatcher_group,
        "to the webhook" if parts.dispatcher.pushes else "off (no FITTRACK_WEBHOOK_URL)",
    )
    tracer = worker.tracing.tracer("fittrack.workers.dispatcher")
    KafkaDispatcher(consumer, parts.dispatcher, tracer, instruments=worker.instruments).run(stopping)


def main() -> int:
    return run_worker(
        "fittrack-dispatcher",
        "Deliver notifications: store each once, push it, retry, keep dead letters (production profile).",
        DISPATCHER,
        "dispatcher",
        dispatch,
    )


if __name__ == "__main__":
    sys.exit(main())
