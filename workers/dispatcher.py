"""The dispatcher: takes new notifications off the queue, stores them and delivers them (core/services/dispatch.py).

Embedded profile (EmbeddedDispatcher): it runs inside the server process,
draining the SQLite outbox in order. It handles a chunk, then deletes it
from the outbox: that deletion is its offset commit, made only after the
write, so a crash in between hands the chunk over again, which the handler
absorbs (the notifications are stored once; only pushes still pending are
tried again). Production profile (KafkaDispatcher): its own processes, one
consumer group over the `notifications` topic, the same handler.

Both run a retry loop beside it, which pushes the deliveries that fell due:
retries after a failure, pushes held back by quiet hours, replayed dead
letters, and pushes a crashed dispatcher left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading

from core.adapters.codec import decode_notification
from core.services.dispatch import Dispatcher
from workers.draining import CHUNK, LogDrainer

log = logging.getLogger(__name__)

# The longest the retry loop sleeps: a dead letter replayed from another process is picked up within it.
RETRY_POLL_SECONDS = 1.0
RETRY_SECONDS = 1.0


class EmbeddedDispatcher:
    """The outbox drained by a LogDrainer into the dispatcher, and the push retry loop beside it."""

    def __init__(self, queue, dispatcher: Dispatcher) -> None:
        self._queue = queue
        self._dispatcher = dispatcher
        self._drainer = LogDrainer("embedded-dispatcher", queue, dispatcher.handle)
        self._stopped = asyncio.Event()
        self._retries: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue.on_sent = self._drainer.wake
        await self._drainer.start()
        if self._dispatcher.pushes:
            self._retries = asyncio.create_task(self._retry(), name="embedded-push-retries")

    def wake(self) -> None:
        self._drainer.wake()

    def drain_once(self) -> int:
        return self._drainer.drain_once()

    async def _retry(self) -> None:
        while not self._stopped.is_set():
            try:
                pause = await asyncio.to_thread(retry_round, self._dispatcher)
            except Exception:
                log.exception("push retry round failed; trying again in %.0f s", RETRY_SECONDS)
                pause = RETRY_SECONDS
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), pause)

    async def stop(self) -> None:
        """Stop after the chunk and the pushes in hand; what remains is handled at the next start."""
        self._stopped.set()
        await self._drainer.stop()
        if self._retries is not None:
            await self._retries
            self._retries = None
        self._queue.on_sent = lambda: None


def retry_round(dispatcher: Dispatcher) -> float:
    """Push what is due now; how long to wait before the next round (0: more may be due already)."""
    if dispatcher.push_due():
        return 0.0
    wait = dispatcher.seconds_until_due()
    return RETRY_POLL_SECONDS if wait is None else min(RETRY_POLL_SECONDS, max(0.0, wait))


class KafkaDispatcher:
    """Production profile: consumes `notifications` in a consumer group.

    Each poll is decoded, handled, and only then committed. A crash between
    the write and the commit hands the records to whoever owns the partition
    next; handling them again stores nothing twice. Notifications are keyed
    by user, so one dispatcher handles a user's at a time, in order, which
    keeps the daily nudge cap exact.
    """

    def __init__(self, consumer, dispatcher: Dispatcher) -> None:
        self._consumer = consumer
        self._dispatcher = dispatcher

    def run_once(self, timeout_ms: int = 1000) -> int:
        """Handle one poll's records and commit them; returns how many notifications they held."""
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        records = [record for partition_records in polled.values() for record in partition_records]
        if not records:
            return 0
        notifications = []
        for record in records:
            try:
                notifications.append(decode_notification(record.value))
            except (ValueError, KeyError, TypeError):
                # Never decodable, so never deliverable: kept back, it would stop its partition for good.
                log.error("skipping a malformed notification record at offset %s", record.offset)
        try:
            self._dispatcher.handle(notifications)
        except Exception:
            # Nothing was committed: rewind so the same records come again after the backoff.
            for partition, partition_records in polled.items():
                self._consumer.seek(partition, partition_records[0].offset)
            raise
        self._consumer.commit()
        return len(records)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("dispatcher could not handle a poll; retrying in %.0f s", RETRY_SECONDS)
                stopping.wait(RETRY_SECONDS)


def run_retries(dispatcher: Dispatcher, stopping: threading.Event) -> None:
    """The retry loop of a dispatcher process: several processes share the due pushes (SKIP LOCKED)."""
    while not stopping.is_set():
        try:
            pause = retry_round(dispatcher)
        except Exception:
            log.exception("push retry round failed; trying again in %.0f s", RETRY_SECONDS)
            pause = RETRY_SECONDS
        if pause:
            stopping.wait(pause)


def make_consumer(config):
    from kafka import KafkaConsumer

    from core.adapters.kafka import bootstrap_list

    return KafkaConsumer(
        config.notifications_topic,
        bootstrap_servers=bootstrap_list(config.kafka_bootstrap),
        group_id=config.dispatcher_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=CHUNK,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )


def main() -> int:
    """`python -m workers.dispatcher` / `fittrack-dispatcher`: one dispatcher process of the production profile."""
    from core.adapters.kafka import ensure_topics
    from core.bootstrap import build_dispatcher, ensure_kafka_topics
    from core.config import Config, ConfigError

    try:
        config = Config.from_env(profile="production")
    except ConfigError as error:
        print(f"fittrack-dispatcher: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection at INFO; its warnings are what an operator needs.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(config.log_level)))
    ensure_kafka_topics(config, ensure_topics)
    parts = build_dispatcher(config)
    consumer = make_consumer(config)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
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
        KafkaDispatcher(consumer, parts.dispatcher).run(stopping)
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
