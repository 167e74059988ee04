"""The persister: applies accepted batches to the metric store.

Embedded profile (EmbeddedPersister): it runs inside the server process,
reading the SQLite ingest log in order. It applies a chunk of batches, then
deletes them from the log: that deletion is its offset commit, made only after
the write, so a crash in between re-applies the chunk, which the idempotent
handler absorbs. Production profile (KafkaPersister): its own processes, one
consumer group over the `readings` topic, the same handler.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from core.adapters.codec import decode_batch
from core.services.persistence import Persister
from workers.draining import LogDrainer

log = logging.getLogger(__name__)


class EmbeddedPersister:
    """The SQLite ingest log drained by a LogDrainer into the persister."""

    def __init__(self, bus, persister: Persister) -> None:
        self._bus = bus
        self._drainer = LogDrainer("embedded-persister", bus, persister.apply)

    async def start(self) -> None:
        self._bus.on_published = self._drainer.wake
        await self._drainer.start()

    def wake(self) -> None:
        self._drainer.wake()

    def drain_once(self) -> int:
        return self._drainer.drain_once()

    async def stop(self) -> None:
        await self._drainer.stop()
        self._bus.on_published = lambda: None


class KafkaPersister:
    """Production profile: consumes `readings` in a consumer group.

    Each poll is decoded, applied, and only then committed. A crash between
    the write and the commit re-delivers the records to whoever owns the
    partition next, and applying them again changes nothing: the handler is
    idempotent. FerretDB 1.x does not lock a document between its read and its
    write, which is safe only because one user's batches all land on one
    partition, and a partition has exactly one consumer in the group.
    """

    def __init__(self, consumer, persister: Persister, crash_after_writes: int = 0) -> None:
        self._consumer = consumer
        self._persister = persister
        # Fault injection for the reliability tests: die between a write and its commit.
        self._crash_after_writes = crash_after_writes
        self._writes = 0

    def run_once(self, timeout_ms: int = 1000) -> int:
        """Apply one poll's records and commit them; returns how many batches it applied."""
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        records = [record for partition_records in polled.values() for record in partition_records]
        if not records:
            return 0
        try:
            self._persister.apply([decode_batch(record.value) for record in records])
        except Exception:
            # Nothing was committed: rewind so the same records come again after the backoff.
            for partition, partition_records in polled.items():
                self._consumer.seek(partition, partition_records[0].offset)
            raise
        self._writes += 1
        if self._crash_after_writes and self._writes >= self._crash_after_writes:
            log.error("crashing on purpose after write %d, before its commit", self._writes)
            os._exit(CRASH_EXIT_CODE)
        self._consumer.commit()
        return len(records)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("persister could not apply a poll; retrying in %.0f s", RETRY_SECONDS)
                stopping.wait(RETRY_SECONDS)


CRASH_EXIT_CODE = 86
RETRY_SECONDS = 1.0


def make_consumer(config):
    from kafka import KafkaConsumer

    from core.adapters.kafka import bootstrap_list

    return KafkaConsumer(
        config.readings_topic,
        bootstrap_servers=bootstrap_list(config.kafka_bootstrap),
        group_id=config.persister_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )


def main() -> int:
    """`python -m workers.persister` / `fittrack-persister`: one persister process of the production profile."""
    from core.adapters.kafka import ensure_topics
    from core.bootstrap import build_persister, ensure_kafka_topics
    from core.config import Config, ConfigError

    try:
        config = Config.from_env(profile="production")
    except ConfigError as error:
        print(f"fittrack-persister: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection at INFO; its warnings are what an operator needs.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(config.log_level)))
    ensure_kafka_topics(config, ensure_topics)
    parts = build_persister(config)
    consumer = make_consumer(config)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    worker = KafkaPersister(
        consumer, parts.persister, int(os.environ.get("FITTRACK_PERSISTER_CRASH_AFTER_WRITES", "0"))
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
