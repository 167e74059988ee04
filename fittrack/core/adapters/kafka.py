"""Apache Kafka, what every use of it shares: topics, producers, liveness.

The reading bus is in kafka_readings.py; the notification queue, the live topic and the dead letters in
kafka_notifications.py.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from fittrack.core.domain.errors import Unavailable

log = logging.getLogger(__name__)

UNAVAILABLE = (
    "the reading bus (Kafka) is unavailable, so this request was not acknowledged; send it again "
    "(readings already stored are replaced, never counted twice)"
)


def bootstrap_list(bootstrap: str) -> list[str]:
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


def ensure_topics(
    bootstrap: str, partitions: dict[str, int], replication_factor: int, wait_seconds: float = 0.0
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    A process often starts while Kafka is still starting or restarting, so it asks
    again, with growing pauses, for up to `wait_seconds` before it gives up.
    """
    deadline = time.monotonic() + wait_seconds
    pause = 0.5
    while True:
        try:
            _create_missing_topics(bootstrap, partitions, replication_factor)
            return
        except KafkaError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(
                    f"Kafka at {bootstrap} did not answer for {wait_seconds:.0f} s ({type(error).__name__}); "
                    "start it, or check FITTRACK_KAFKA_BOOTSTRAP"
                ) from error
            log.warning("Kafka is not reachable yet (%s); asking again in %.1f s", type(error).__name__, pause)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


def _create_missing_topics(bootstrap: str, partitions: dict[str, int], replication_factor: int) -> None:
    # Short attempts: the waiting is ensure_topics's, where it is logged and bounded.
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_list(bootstrap), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
    )
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=replication_factor)
            for name, count in partitions.items()
            if name not in existing
        ]
        # Another process may create one between our look and our create.
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


def make_producer(bootstrap: str, publish_timeout_seconds: float) -> KafkaProducer:
    request_timeout_ms = 5_000
    return KafkaProducer(
        bootstrap_servers=bootstrap_list(bootstrap),
        # acks=all plus idempotence: an acknowledged batch is on every in-sync
        # replica, and a retried send is never written twice.
        acks="all",
        enable_idempotence=True,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=request_timeout_ms,
        delivery_timeout_ms=max(int(publish_timeout_seconds * 1000), request_timeout_ms + 100),
        # send() blocks while it has no metadata; bound it so an outage is
        # answered with UNAVAILABLE within a client's deadline.
        max_block_ms=2_000,
        # kafka-python bootstraps from one broker picked at random and gives it the whole timeout: a broker
        # whose host is cut off would hold a new producer (one replaces a failed one) for 30 s by default.
        bootstrap_timeout_ms=5_000,
        linger_ms=1,
        compression_type=None,
    )


class KafkaLiveness:
    """Whether a Kafka broker accepts connections, checked by a cheap TCP connect.

    The server polls it to report the metric service NOT_SERVING and to refuse
    uploads at once, instead of letting them wait out a send timeout.
    """

    def __init__(self, bootstrap: str) -> None:
        self._addresses = []
        for server in bootstrap_list(bootstrap):
            host, _, port = server.rpartition(":")
            self._addresses.append((host, int(port)))
        self.up = True

    def check(self, timeout: float = 1.0) -> bool:
        for address in self._addresses:
            try:
                with socket.create_connection(address, timeout=timeout):
                    self.up = True
                    return True
            except OSError:
                continue
        self.up = False
        return False


def close_quietly(producer: KafkaProducer) -> None:
    """Close a producer given up on; what it still held was already answered UNAVAILABLE.

    kafka-python's close() flushes first and gives up half-closed when the flush times
    out, leaving the garbage collector to try again. Waiting out the delivery timeout
    lets every pending record succeed or expire, so the close completes here, on this
    background thread.
    """
    delivery_timeout = producer.config["delivery_timeout_ms"] / 1000
    with contextlib.suppress(KafkaError):
        producer.close(timeout=delivery_timeout + 1)
