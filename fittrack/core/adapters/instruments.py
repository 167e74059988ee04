"""Every Prometheus instrument of a Fittrack process, on the registry it is given (issue 14's agreed names).

One `Instruments` per process, made by the composition root and handed to the parts that record: the gRPC
interceptor, the metric servicer, the Kafka adapters, the consumer loops, the store timing proxies, the
server's dependency watch and the MetricsObserver. With metrics off they get `NoInstruments`, whose methods do
nothing, so an unconfigured process pays a method call at most. Labels never hold a user id, username or
token: every label value here is a method name, a status code, an outcome, a topic, a partition number or a
fixed store/operation name chosen by the code.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

# Seconds: gRPC calls and acks run from a millisecond (a cached lookup) to the publish timeout (10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Store calls are usually sub-millisecond (SQLite) to tens of milliseconds (a bulk upsert on MongoDB).
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# An evaluation slot over every user of a zone can take minutes.
SLOT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

OUTCOMES = ("accepted", "duplicate", "rejected")


def label_safe(text: str) -> str:
    """A dependency's description ("the account database (PostgreSQL)") as a short label value ("postgresql")."""
    inside = re.search(r"\(([^)]*)\)", text)
    word = inside.group(1) if inside else text
    return re.sub(r"[^a-z0-9_]+", "_", word.lower()).strip("_") or "unknown"


class Instruments:
    """The instruments, registered on `registry`, with the process and platform collectors beside them."""

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        r = registry
        grpc_labels = ("grpc_service", "grpc_method", "grpc_type")
        self.grpc_started = Counter("grpc_server_started", "RPCs started on the server.", grpc_labels, registry=r)
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            (*grpc_labels, "grpc_code"),
            registry=r,
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start until the server sent its status.",
            grpc_labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.grpc_open_streams = Gauge(
            "fittrack_grpc_open_streams",
            "Streaming RPCs open now.",
            ("grpc_service", "grpc_method"),
            registry=r,
        )
        self.ingest_readings = Counter(
            "fittrack_ingest_readings", "Readings received, by what became of them.", ("outcome",), registry=r
        )
        self.ingest_batches = Counter(
            "fittrack_ingest_batches", "Reading batches received, by what became of them.", ("outcome",), registry=r
        )
        for outcome in OUTCOMES:  # present at 0 from the start, so rate() and alerts see the series
            self.ingest_readings.labels(outcome)
            self.ingest_batches.labels(outcome)
        self.ingest_ack_seconds = Histogram(
            "fittrack_ingest_ack_seconds",
            "Time from a batch's arrival until its ack (or the upload's summary) was ready.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_in_flight = Gauge(
            "fittrack_ingest_batches_in_flight", "Batches submitted to the reading bus and not yet durable.", registry=r
        )
        self.kafka_produce_errors = Counter(
            "fittrack_kafka_produce_errors",
            "Records Kafka did not take (after the producer's retries).",
            ("topic",),
            registry=r,
        )
        self.kafka_produce_retries = Counter(
            "fittrack_kafka_produce_retries", "Record sends the Kafka producer retried.", ("topic",), registry=r
        )
        self.kafka_lag = Gauge(
            "fittrack_kafka_consumer_lag",
            "Records on a partition not yet consumed and committed by this worker (end offset minus position).",
            ("role", "topic", "partition"),
            registry=r,
        )
        self.kafka_consumed = Counter(
            "fittrack_kafka_consumed_records", "Kafka records handled and committed.", ("role", "topic"), registry=r
        )
        self.kafka_apply_seconds = Histogram(
            "fittrack_kafka_batch_apply_seconds",
            "Time to handle and commit one poll's records.",
            ("role",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "fittrack_store_operation_seconds",
            "Time of one store call, by store and operation.",
            ("store", "operation"),
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_pool_in_use = Gauge(
            "fittrack_store_pool_connections_in_use",
            "Connections lent out of a pool now.",
            ("store", "pool"),
            registry=r,
        )
        self.dependency_up = Gauge(
            "fittrack_dependency_up",
            "1 while the server reaches the dependency, 0 while it does not.",
            ("dependency",),
            registry=r,
        )
        self.notifications_stored = Counter(
            "fittrack_notifications_stored", "Notifications stored for users.", registry=r
        )
        self.notifications_pushed = Counter("fittrack_notifications_pushed", "Notifications pushed.", registry=r)
        self.push_retries = Counter(
            "fittrack_notifications_push_retries", "Pushes that failed and were scheduled again.", registry=r
        )
        self.dead_lettered = Counter(
            "fittrack_notifications_dead_lettered", "Notifications given up on (dead letters).", registry=r
        )
        self.evaluator_slots = Counter("fittrack_evaluator_slots", "Evaluation slots run.", registry=r)
        self.evaluator_users = Counter(
            "fittrack_evaluator_users_evaluated", "Users whose goals were evaluated.", registry=r
        )
        self.evaluator_slot_seconds = Histogram(
            "fittrack_evaluator_slot_seconds", "Time of one evaluation slot.", buckets=SLOT_BUCKETS, registry=r
        )
        self.logins = Counter(
            "fittrack_logins", "Login attempts, by method and outcome.", ("method", "outcome"), registry=r
        )
        self.throttled_addresses = Counter(
            "fittrack_throttled_addresses", "Client addresses that reached the failed-login limit.", registry=r
        )
        self.throttled_accounts = Counter(
            "fittrack_throttled_accounts", "Accounts that reached the failed-login limit.", registry=r
        )
        self.refresh_reuse = Counter(
            "fittrack_refresh_token_reuse",
            "Refresh tokens presented a second time (their session revoked).",
            registry=r,
        )

    # Ingest (the metric servicer).
    def ingested(self, outcome: str, batches: int, readings: int) -> None:
        self.ingest_batches.labels(outcome).inc(batches)
        self.ingest_readings.labels(outcome).inc(readings)

    def acked(self, seconds: float) -> None:
        self.ingest_ack_seconds.observe(seconds)

    def in_flight(self, change: int) -> None:
        self.ingest_in_flight.inc(change)

    # Kafka.
    def produce_failed(self, topic: str, records: int = 1) -> None:
        self.kafka_produce_errors.labels(topic).inc(records)

    def produce_retried(self, topic: str, records: int) -> None:
        self.kafka_produce_retries.labels(topic).inc(records)

    def consumed(self, role: str, topic: str, records: int) -> None:
        self.kafka_consumed.labels(role, topic).inc(records)

    def applied(self, role: str, seconds: float) -> None:
        self.kafka_apply_seconds.labels(role).observe(seconds)

    def lag(self, role: str, lags: dict[tuple[str, int], int], gone: set[tuple[str, int]]) -> None:
        """The lag of each (topic, partition) this worker holds; those in `gone` were revoked and go."""
        for (topic, partition), records in lags.items():
            self.kafka_lag.labels(role, topic, str(partition)).set(records)
        for topic, partition in gone:
            with contextlib.suppress(KeyError):  # never exported
                self.kafka_lag.remove(role, topic, str(partition))

    # Stores.
    def store_call(self, store: str, operation: str, seconds: float) -> None:
        self.store_seconds.labels(store, operation).observe(seconds)

    def watch_pool(self, store: str, pool: str, in_use: Callable[[], int]) -> None:
        """Read at each scrape: nothing is recorded per connection lent."""
        self.store_pool_in_use.labels(store, pool).set_function(in_use)

    # The server's dependency watch.
    def dependency(self, what: str, up: bool) -> None:
        self.dependency_up.labels(label_safe(what)).set(1 if up else 0)


class NoInstruments(Instruments):
    """Metrics off: every method does nothing, and nothing is registered anywhere."""

    enabled = False

    def __init__(self) -> None:
        self.registry = None

    def ingested(self, outcome: str, batches: int, readings: int) -> None:
        pass

    def acked(self, seconds: float) -> None:
        pass

    def in_flight(self, change: int) -> None:
        pass

    def produce_failed(self, topic: str, records: int = 1) -> None:
        pass

    def produce_retried(self, topic: str, records: int) -> None:
        pass

    def consumed(self, role: str, topic: str, records: int) -> None:
        pass

    def applied(self, role: str, seconds: float) -> None:
        pass

    def lag(self, role: str, lags: dict[tuple[str, int], int], gone: set[tuple[str, int]]) -> None:
        pass

    def store_call(self, store: str, operation: str, seconds: float) -> None:
        pass

    def watch_pool(self, store: str, pool: str, in_use: Callable[[], int]) -> None:
        pass

    def dependency(self, what: str, up: bool) -> None:
        pass


NO_INSTRUMENTS = NoInstruments()


def count_producer_retries(producer, instruments: Instruments):
    """Count the sends `producer` retries, per topic, into fittrack_kafka_produce_retries_total; returns it.

    kafka-python retries inside its sender thread and keeps only a per-second rate of retries, so the
    sender's own hook (SenderMetrics.record_retries, called with the topic and the records retried) is wrapped.
    A producer without sender metrics is returned as it is.
    """
    if not instruments.enabled:
        return producer
    sensors = getattr(getattr(producer, "_sender", None), "_sensors", None)
    if sensors is None or not hasattr(sensors, "record_retries"):
        return producer
    original = sensors.record_retries

    def record_retries(topic, count):
        instruments.produce_retried(topic, count)
        return original(topic, count)

    sensors.record_retries = record_retries
    return producer


class Timed:
    """A proxy that times each public method call of `target` into fittrack_store_operation_seconds.

    operation = f"{prefix}.{method}" (e.g. "metric_store.upsert_minutes"); a call that raises is timed too.
    Methods named in `untimed` (context managers, close) pass through as they are.
    """

    UNTIMED = frozenset({"close", "grouped", "transaction"})

    def __init__(self, target, instruments: Instruments, store: str, prefix: str) -> None:
        self.__dict__["_target"] = target
        self.__dict__["_instruments"] = instruments
        self.__dict__["_store"] = store
        self.__dict__["_prefix"] = prefix

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if name.startswith("_") or name in self.UNTIMED or not callable(value):
            return value
        record = self._instruments.store_call
        store, operation = self._store, f"{self._prefix}.{name}"

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                record(store, operation, time.perf_counter() - started)

        self.__dict__[name] = timed  # the next lookup skips __getattr__
        return timed

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"Timed({self._target!r})"


class TimedUnitOfWork:
    """An accounts unit of work whose repositories' calls, commit and rollback are timed (operation "users.get")."""

    def __init__(self, target, instruments: Instruments, store: str) -> None:
        self._target = target
        self._instruments = instruments
        self._store = store
        self._repositories: dict[str, Timed] = {}

    def __enter__(self):
        self._target.__enter__()
        self._repositories.clear()  # a unit may make its repositories afresh for each transaction
        return self

    def __exit__(self, *exc_info):
        return self._target.__exit__(*exc_info)

    def commit(self) -> None:
        started = time.perf_counter()
        try:
            self._target.commit()
        finally:
            self._instruments.store_call(self._store, "uow.commit", time.perf_counter() - started)

    def rollback(self) -> None:
        self._target.rollback()

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if name.startswith("_") or callable(value):
            return value
        timed = self._repositories.get(name)
        if timed is None:
            timed = self._repositories[name] = Timed(value, self._instruments, self._store, name)
        return timed


def timed_units(make_uow: Callable[[], object], instruments: Instruments, store: str) -> Callable[[], object]:
    """A unit-of-work factory whose units are timed; the factory itself when metrics are off."""
    if not instruments.enabled:
        return make_uow
    return lambda: TimedUnitOfWork(make_uow(), instruments, store)


def timed(target, instruments: Instruments, store: str, prefix: str):
    """`target` with its calls timed; `target` itself when metrics are off."""
    if not instruments.enabled:
        return target
    return Timed(target, instruments, store, prefix)
