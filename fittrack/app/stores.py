"""The adapters each profile's processes reach, made from the settings: the embedded profile's one SQLite file,
or the production profile's PostgreSQL, MongoDB (or FerretDB) and Kafka, each timed when metrics are on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fittrack.app.config import Config
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments, count_producer_retries, mongo_listeners
from fittrack.core.adapters.live import LiveNotifications
from fittrack.core.adapters.store_timing import timed, timed_units
from fittrack.core.ports import (
    AccountsUnitOfWork,
    MetricStore,
    NotificationQueue,
    ReadingBus,
)

# The gRPC service that cannot work without Kafka (its readings go there); every other needs only PostgreSQL.
METRIC_SERVICE = "fittrack.v1.MetricService"


@dataclass(frozen=True)
class Dependency:
    """Something the server's calls need, checked every second while the server runs."""

    what: str  # for the log
    check: Callable[[], bool]
    # The gRPC services that cannot work without it; empty: every service.
    services: tuple[str, ...] = ()


@dataclass
class Stores:
    """The adapters of one profile."""

    uow: Callable[[], AccountsUnitOfWork]
    read_uow: Callable[[], AccountsUnitOfWork]  # may lag (a replica): reports
    lookup_uow: Callable[[], AccountsUnitOfWork]  # reads only, the primary's unless it is out: sessions, zones
    metric_store: MetricStore
    bus: ReadingBus
    closers: list[Callable[[], None]]
    notification_queue: NotificationQueue | None = None


def embedded_stores(config: Config, instruments: Instruments = NO_INSTRUMENTS) -> Stores:
    from fittrack.core.adapters.file_lock import FileLock
    from fittrack.core.adapters.sqlite import SqliteDatabase
    from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
    from fittrack.core.adapters.sqlite_ingest import SqliteReadingBus
    from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
    from fittrack.core.adapters.sqlite_outbox import SqliteNotificationQueue

    # One SQLite file is one server's: a second would run a second evaluator and dispatcher over it.
    # HeldElsewhere when another process holds it.
    hold = FileLock(config.database_path.with_name(config.database_path.name + ".lock")).acquire()
    try:
        db = SqliteDatabase(config.database_path)
        db.migrate()
    except BaseException:
        hold.release()
        raise

    def uow() -> SqliteUnitOfWork:
        return SqliteUnitOfWork(db)

    def read_uow() -> SqliteUnitOfWork:
        return SqliteUnitOfWork(db, read_only=True)

    bus = SqliteReadingBus(db)
    # The bus's writer goes first: what it still holds is stored before the database closes.
    closers = [hold.release, db.close, bus.close]  # closed in reverse: the hold last
    timed_uow = timed_units(uow, instruments, "sqlite")
    timed_read_uow = timed_units(read_uow, instruments, "sqlite")
    store = timed(SqliteMetricStore(db), instruments, "sqlite", "metric_store")
    return Stores(timed_uow, timed_read_uow, timed_read_uow, store, bus, closers, SqliteNotificationQueue(db))


def production_stores(config: Config, live: LiveNotifications, instruments: Instruments = NO_INSTRUMENTS):
    from fittrack.core.adapters.kafka import KafkaLiveness, ensure_topics
    from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue, NotificationRelay
    from fittrack.core.adapters.kafka_readings import KafkaReadingBus
    from fittrack.core.adapters.postgres import PostgresDatabase
    from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
    from fittrack.core.adapters.postgres_devices import PostgresDeviceCursors

    db = PostgresDatabase(config.pg_dsn, config.pg_replica_dsn, config.pg_pool_max)
    db.migrate()
    watch_pools(db, instruments)
    store = metric_store(config, config.mongo_read_preference, instruments)
    ensure_kafka_topics(config, ensure_topics)
    liveness = KafkaLiveness(config.kafka_bootstrap)
    producer = producer_maker(config, instruments)
    bus = KafkaReadingBus(
        producer,
        config.readings_topic,
        PostgresDeviceCursors(db),
        liveness,
        config.publish_timeout_seconds,
        instruments,
    )
    # The relay reads what dispatchers stored, not the queue: a notification the dispatcher drops never shows.
    relay = RelayInBackground(NotificationRelay(config.kafka_bootstrap, config.live_notifications_topic, live.deliver))
    queue = KafkaNotificationQueue(producer, config.notifications_topic, config.publish_timeout_seconds, instruments)

    def uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db)

    def read_uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db, read_only=True)

    def lookup_uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db, lookup=True)

    uow, read_uow, lookup_uow = (timed_units(each, instruments, "postgresql") for each in (uow, read_uow, lookup_uow))
    timed_store = timed(store, instruments, "mongodb", "metric_store")

    closers = [db.close, store.close, bus.close, queue.close]
    dependencies = [
        # Every call but the health check authenticates against the account database.
        Dependency("the account database (PostgreSQL)", db.reachable),
        Dependency("Kafka", liveness.check, (METRIC_SERVICE,)),
    ]
    return Stores(uow, read_uow, lookup_uow, timed_store, bus, closers, queue), dependencies, relay


def ensure_kafka_topics(config: Config, ensure_topics) -> None:
    ensure_topics(
        config.kafka_bootstrap,
        {
            config.readings_topic: config.readings_partitions,
            config.notifications_topic: config.notifications_partitions,
            config.live_notifications_topic: config.notifications_partitions,
            # Few records, read whole by `fittrack-admin dead-letters list`: one partition keeps them in order.
            config.dead_letter_topic: 1,
        },
        config.kafka_replication_factor,
        config.kafka_startup_wait_seconds,
    )


@dataclass
class RelayInBackground:
    relay: object
    ready_timeout: float = 30.0

    async def start(self) -> None:
        self.relay.start()
        # Live streams opened after start-up must not miss a notification.
        await asyncio.to_thread(self.relay.ready.wait, self.ready_timeout)

    async def stop(self) -> None:
        await asyncio.to_thread(self.relay.stop)


def metric_store(config: Config, read_preference: str, instruments: Instruments = NO_INSTRUMENTS):
    """The production profile's metric store, its indexes ensured (on FerretDB's tables too, when it is FerretDB)."""
    from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
    from fittrack.core.adapters.ferretdb_reads import FerretDBReads
    from fittrack.core.adapters.mongo import MongoMetricStore
    from fittrack.core.adapters.mongo_layout import COLLECTION, EQUALITY_FIELDS

    indexes = reads = None
    if config.ferretdb_pg_dsn:
        indexes = FerretDBIndexes(config.ferretdb_pg_dsn, config.mongo_database, EQUALITY_FIELDS)
        reads = FerretDBReads(
            config.ferretdb_pg_dsn, config.mongo_database, COLLECTION, timeout_seconds=config.mongo_timeout_seconds
        )
    store = MongoMetricStore(
        config.mongo_uri,
        config.mongo_database,
        read_preference,
        config.mongo_timeout_seconds,
        indexes,
        reads,
        event_listeners=mongo_listeners(instruments),
    )
    store.ensure_indexes()
    return store


def postgres_database(config: Config, pool_max: int | None = None, instruments: Instruments = NO_INSTRUMENTS):
    """The account database of a production worker process, migrated."""
    from fittrack.core.adapters.postgres import PostgresDatabase

    db = PostgresDatabase(config.pg_dsn, config.pg_replica_dsn, pool_max or config.pg_pool_max)
    db.migrate()
    watch_pools(db, instruments)
    return db


def watch_pools(db, instruments: Instruments) -> None:
    """fittrack_store_pool_connections_in_use of the primary's pool, and the replica's when there is one."""
    instruments.watch_pool("postgresql", "primary", db.primary.in_use)
    if db.has_replica:
        instruments.watch_pool("postgresql", "replica", db.replica.in_use)


def producer_maker(config: Config, instruments: Instruments):
    """What makes each Kafka producer of a process (a failed one is replaced), its retries counted."""
    from fittrack.core.adapters.kafka import make_producer

    return lambda: count_producer_retries(
        make_producer(config.kafka_bootstrap, config.publish_timeout_seconds), instruments
    )


def notification_queue(config: Config, instruments: Instruments = NO_INSTRUMENTS):
    from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue

    return KafkaNotificationQueue(
        producer_maker(config, instruments), config.notifications_topic, config.publish_timeout_seconds, instruments
    )


def dead_letter_log(config: Config, instruments: Instruments = NO_INSTRUMENTS):
    from fittrack.core.adapters.kafka_notifications import KafkaDeadLetterLog

    return KafkaDeadLetterLog(
        config.kafka_bootstrap,
        config.dead_letter_topic,
        producer_maker(config, instruments),
        config.publish_timeout_seconds,
        instruments,
    )
