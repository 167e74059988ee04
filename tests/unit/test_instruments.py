"""The Prometheus instruments: what the MetricsObserver counts of each domain event, the store timing proxies,
the consumer loop's figures and the producer's retries, read back from a registry of the test's own."""

from __future__ import annotations

import threading

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from fittrack.core.adapters.instruments import (
    NO_INSTRUMENTS,
    Instruments,
    MongoPoolGauge,
    count_producer_retries,
    label_safe,
)
from fittrack.core.adapters.metrics_observer import MetricsObserver, metrics_observer
from fittrack.core.adapters.store_timing import timed, timed_units
from fittrack.core.domain import events
from fittrack.core.domain.events import LoginMethod, LoginOutcome
from fittrack.core.ports import Unobserved
from fittrack.workers.runtime import ConsumerLoop


@pytest.fixture
def instruments() -> Instruments:
    return Instruments(CollectorRegistry())


def value(instruments: Instruments, name: str, **labels: str) -> float:
    return instruments.registry.get_sample_value(name, labels) or 0.0


def label_values(instruments: Instruments) -> set[str]:
    return {
        label
        for family in instruments.registry.collect()
        for sample in family.samples
        for label in sample.labels.values()
    }


# --- MetricsObserver: the events of fittrack/core/domain/events.py as counters ---


def test_logins_are_counted_by_method_and_outcome_without_the_user_or_the_address(instruments):
    observer = MetricsObserver(instruments)
    observer.saw(events.LoginAttempted(LoginMethod.PASSWORD, LoginOutcome.SUCCESS, "user-42", "203.0.113.9"))
    observer.saw(events.LoginAttempted(LoginMethod.PASSWORD, LoginOutcome.FAILURE, None, "203.0.113.9"))
    observer.saw(events.LoginAttempted(LoginMethod.PASSWORD, LoginOutcome.FAILURE, "user-42", "203.0.113.9"))
    observer.saw(events.LoginAttempted(LoginMethod.SSO, LoginOutcome.SUCCESS, "user-7"))
    observer.saw(events.LoginAttempted(LoginMethod.REFRESH, LoginOutcome.THROTTLED, "user-7"))
    logins = "fittrack_logins_total"
    assert value(instruments, logins, method="password", outcome="success") == 1
    assert value(instruments, logins, method="password", outcome="failure") == 2
    assert value(instruments, logins, method="sso", outcome="success") == 1
    assert value(instruments, logins, method="refresh", outcome="throttled") == 1
    assert value(instruments, logins, method="sso", outcome="failure") == 0
    assert not {"user-42", "user-7", "203.0.113.9"} & label_values(instruments)


def test_every_login_series_exists_at_zero_before_the_first_login(instruments):
    MetricsObserver(instruments)
    for method in LoginMethod:
        for outcome in LoginOutcome:
            labels = {"method": method.value, "outcome": outcome.value}
            assert instruments.registry.get_sample_value("fittrack_logins_total", labels) == 0


def test_throttling_and_refresh_token_reuse_are_counted(instruments):
    observer = MetricsObserver(instruments)
    observer.saw(events.AddressThrottled("198.51.100.1"))
    observer.saw(events.AddressThrottled("198.51.100.2"))
    observer.saw(events.AccountThrottled("user-1", "198.51.100.1"))
    observer.saw(events.RefreshTokenReused("user-1"))
    assert value(instruments, "fittrack_throttled_addresses_total") == 2
    assert value(instruments, "fittrack_throttled_accounts_total") == 1
    assert value(instruments, "fittrack_refresh_token_reuse_total") == 1
    assert not {"user-1", "198.51.100.1", "198.51.100.2"} & label_values(instruments)


def test_notifications_stored_pushed_retried_and_dead_lettered_are_counted(instruments):
    observer = MetricsObserver(instruments)
    observer.saw(events.NotificationsStored(3))
    observer.saw(events.NotificationsStored(2))
    observer.saw(events.NotificationPushed())
    observer.saw(events.PushRetried())
    observer.saw(events.PushRetried())
    observer.saw(events.NotificationDeadLettered())
    assert value(instruments, "fittrack_notifications_stored_total") == 5
    assert value(instruments, "fittrack_notifications_pushed_total") == 1
    assert value(instruments, "fittrack_notifications_push_retries_total") == 2
    assert value(instruments, "fittrack_notifications_dead_lettered_total") == 1


def test_an_evaluation_slot_counts_the_slot_its_users_and_its_duration(instruments):
    observer = MetricsObserver(instruments)
    observer.saw(events.EvaluationSlotRun(users=120, seconds=0.3))
    observer.saw(events.EvaluationSlotRun(users=30, seconds=2.0))
    assert value(instruments, "fittrack_evaluator_slots_total") == 2
    assert value(instruments, "fittrack_evaluator_users_evaluated_total") == 150
    assert value(instruments, "fittrack_evaluator_slot_seconds_count") == 2
    assert value(instruments, "fittrack_evaluator_slot_seconds_sum") == pytest.approx(2.3)
    assert value(instruments, "fittrack_evaluator_slot_seconds_bucket", le="0.5") == 1


def test_events_the_metrics_do_not_count_change_nothing(instruments):
    observer = MetricsObserver(instruments)
    before = [
        (s.name, s.labels, s.value) for f in instruments.registry.collect() for s in f.samples if "fittrack" in s.name
    ]
    observer.saw(events.PasswordChanged("user-1", "192.0.2.1"))
    observer.saw(events.AccountDeleted("user-1"))
    after = [
        (s.name, s.labels, s.value) for f in instruments.registry.collect() for s in f.samples if "fittrack" in s.name
    ]
    assert after == before


def test_with_metrics_off_the_observer_is_the_one_that_does_nothing():
    assert isinstance(metrics_observer(NO_INSTRUMENTS), Unobserved)
    assert isinstance(metrics_observer(Instruments(CollectorRegistry())), MetricsObserver)


# --- store timing ---


class Store:
    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def upsert(self, key: str, n: int) -> None:
        self.rows[key] = n

    def broken(self) -> None:
        raise RuntimeError("the disk is full")

    def close(self) -> None:
        self.rows.clear()


def test_each_store_call_is_timed_as_its_operation_and_its_result_passes_through(instruments):
    store = timed(Store(), instruments, "mongodb", "metric_store")
    store.upsert("a", 1)
    store.upsert("b", 2)
    assert store.rows == {"a": 1, "b": 2}
    with pytest.raises(RuntimeError, match="disk is full"):
        store.broken()
    seconds = "fittrack_store_operation_seconds_count"
    assert value(instruments, seconds, store="mongodb", operation="metric_store.upsert") == 2
    assert value(instruments, seconds, store="mongodb", operation="metric_store.broken") == 1
    store.close()
    assert value(instruments, seconds, store="mongodb", operation="metric_store.close") == 0


class UnitOfWork:
    """Like the SQL units: repositories attached when the transaction begins."""

    def __init__(self) -> None:
        self.committed = False

    def __enter__(self):
        self.users = Store()
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def commit(self) -> None:
        self.committed = True


def test_a_unit_of_work_times_its_repositories_calls_and_its_commit(instruments):
    units = []

    def make() -> UnitOfWork:
        units.append(UnitOfWork())
        return units[-1]

    factory = timed_units(make, instruments, "postgresql")
    for name in ("ann", "bob"):
        with factory() as uow:
            uow.users.upsert(name, 1)
            uow.commit()
    assert all(unit.committed for unit in units) and units[1].users.rows == {"bob": 1}
    seconds = "fittrack_store_operation_seconds_count"
    assert value(instruments, seconds, store="postgresql", operation="users.upsert") == 2
    assert value(instruments, seconds, store="postgresql", operation="uow.commit") == 2


def test_with_metrics_off_the_stores_are_not_wrapped():
    store = Store()
    assert timed(store, NO_INSTRUMENTS, "sqlite", "metric_store") is store
    assert timed_units(UnitOfWork, NO_INSTRUMENTS, "sqlite") is UnitOfWork


# --- Kafka ---


class Consumer:
    """kafka-python's KafkaConsumer as ConsumerLoop uses it, over two partitions of one topic."""

    def __init__(self, records: dict[int, int], ends: dict[int, int]) -> None:
        self.partitions = {TopicPartition("readings", p): n for p, n in records.items()}
        self.ends = ends
        self.positions = dict.fromkeys(self.partitions, 0)
        self.assigned = set(self.partitions)

    def poll(self, timeout_ms: int) -> dict:
        polled = {}
        for partition, count in self.partitions.items():
            start = self.positions[partition]
            if start < count:
                polled[partition] = [type("Record", (), {"offset": o})() for o in range(start, count)]
                self.positions[partition] = count
        return polled

    def commit(self) -> None:
        pass

    def seek(self, partition, offset) -> None:
        self.positions[partition] = offset

    def assignment(self):
        return set(self.assigned)

    def end_offsets(self, partitions, timeout_ms=None):
        return {p: self.ends[p.partition] for p in partitions}

    def position(self, partition, timeout_ms=None):
        return self.positions[partition]


class Loop(ConsumerLoop):
    what = "persister"

    def __init__(self, consumer, **loop) -> None:
        super().__init__(consumer, **loop)
        self.handled = 0

    def handle(self, records) -> None:
        self.handled += len(records)


def test_a_consumer_loop_counts_the_records_it_committed_and_times_each_poll(instruments):
    loop = Loop(Consumer({0: 3, 1: 2}, {0: 3, 1: 2}), instruments=instruments)
    assert loop.run_once() == 5
    assert loop.run_once() == 0
    consumed = "fittrack_kafka_consumed_records_total"
    assert value(instruments, consumed, role="persister", topic="readings") == 5
    assert value(instruments, "fittrack_kafka_batch_apply_seconds_count", role="persister") == 1


def test_a_consumer_loop_exports_each_partitions_lag_and_drops_a_revoked_one(instruments):
    consumer = Consumer({0: 3, 1: 2}, {0: 10, 1: 2})
    loop = Loop(consumer, instruments=instruments)
    loop.run_once()
    loop.refresh_lag()
    lag = "fittrack_kafka_consumer_lag"
    assert value(instruments, lag, role="persister", topic="readings", partition="0") == 7
    assert value(instruments, lag, role="persister", topic="readings", partition="1") == 0
    consumer.assigned.discard(TopicPartition("readings", 1))
    loop.refresh_lag()
    assert (
        instruments.registry.get_sample_value(lag, {"role": "persister", "topic": "readings", "partition": "1"}) is None
    )


def test_a_consumer_stuck_on_a_poll_it_cannot_handle_still_exports_its_growing_lag(instruments):
    consumer = Consumer({0: 3}, {0: 3})
    stopping = threading.Event()

    class Stuck(Loop):
        def handle(self, records) -> None:
            consumer.ends[0] += 4  # the devices go on sending while this worker fails
            stopping.set()  # one round is enough
            raise RuntimeError("the store refuses this batch")

    Stuck(consumer, instruments=instruments).run(stopping)
    behind = consumer.ends[0] - consumer.positions[TopicPartition("readings", 0)]
    assert behind >= 4
    assert (
        value(instruments, "fittrack_kafka_consumer_lag", role="persister", topic="readings", partition="0") == behind
    )


def test_the_lag_is_asked_of_kafka_at_most_once_per_interval(instruments):
    consumer = Consumer({0: 1}, {0: 1})
    asked = []
    ends = consumer.end_offsets
    consumer.end_offsets = lambda partitions, timeout_ms=None: asked.append(1) or ends(partitions)
    loop = Loop(consumer, instruments=instruments, lag_seconds=3600)
    for _ in range(5):
        loop._lag()
    assert len(asked) == 1


def test_the_producers_retries_are_counted_by_topic(instruments):
    recorded = []

    class Sensors:
        def record_retries(self, topic, count):
            recorded.append((topic, count))

    producer = type("Producer", (), {})()
    producer._sender = type("Sender", (), {})()
    producer._sender._sensors = Sensors()
    count_producer_retries(producer, instruments)
    producer._sender._sensors.record_retries("readings", 3)  # as kafka-python's sender calls it
    assert value(instruments, "fittrack_kafka_produce_retries_total", topic="readings") == 3
    assert recorded == [("readings", 3)]  # kafka-python's own rate still gets it


def test_a_dependency_is_named_by_a_short_label():
    assert label_safe("the account database (PostgreSQL)") == "postgresql"
    assert label_safe("Kafka") == "kafka"


def test_mongodb_connections_checked_out_of_a_pool_are_in_use_until_checked_in(instruments):
    gauge = MongoPoolGauge(instruments)
    event = type("Event", (), {"address": ("db1", 27017)})()
    gauge.pool_created(event)
    gauge.connection_checked_out(event)
    gauge.connection_checked_out(event)
    in_use = {"store": "mongodb", "pool": "db1:27017"}
    assert value(instruments, "fittrack_store_pool_connections_in_use", **in_use) == 2
    gauge.connection_checked_in(event)
    assert value(instruments, "fittrack_store_pool_connections_in_use", **in_use) == 1
