"""What each production worker process is made of: a persister's, a dispatcher's and an evaluator's parts, and
the dead letters `fittrack-admin` reads. The processes themselves are persister.py, dispatcher.py, evaluator.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.trace import Tracer

from fittrack.app.config import Config
from fittrack.app.stores import dead_letter_log, metric_store, notification_queue, postgres_database, producer_maker
from fittrack.app.wiring import (
    dispatch_settings,
    evaluation_schedule,
    process_observer,
    push_channel,
    utc_now,
)
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.adapters.observers import Observers
from fittrack.core.adapters.store_timing import timed, timed_units
from fittrack.core.ports import (
    NotificationSink,
)
from fittrack.core.services.dispatch import DeadLetters, Dispatcher
from fittrack.core.services.persistence import FirstCopies, Persister
from fittrack.workers.evaluator import EvaluationSchedule


@dataclass
class WorkerParts:
    """What a persister process needs in the production profile."""

    persister: Persister
    copies: FirstCopies
    # Done now and then: the metric store's indexes, which FerretDB drops with a dropped collection's table.
    store_upkeep: Callable[[], None]
    closers: list[Callable[[], None]]


def build_persister(
    config: Config,
    clock: Callable[[], datetime] = utc_now,
    tracer: Tracer | None = None,
    instruments: Instruments = NO_INSTRUMENTS,
) -> WorkerParts:
    from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
    from fittrack.core.adapters.postgres_devices import PostgresBatchClaims

    db = postgres_database(config, instruments=instruments)
    store = metric_store(config, "primary", instruments)
    queue = notification_queue(config, instruments)

    def uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db)

    persister = Persister(
        timed(store, instruments, "mongodb", "metric_store"),
        timed_units(uow, instruments, "postgresql"),
        queue,
        clock,
        tracer,
    )
    claims = timed(PostgresBatchClaims(db), instruments, "postgresql", "batch_claims")
    copies = FirstCopies(claims, clock)
    return WorkerParts(persister, copies, store.ensure_indexes, [db.close, store.close, queue.close])


@dataclass
class EvaluatorParts:
    """What the evaluator process needs in the production profile."""

    schedule: EvaluationSchedule
    closers: list[Callable[[], None]]
    observer: Observers = field(default_factory=Observers)


def build_evaluator(
    config: Config,
    clock: Callable[[], datetime] = utc_now,
    observer: Observers | None = None,
    tracer: Tracer | None = None,
    instruments: Instruments = NO_INSTRUMENTS,
) -> EvaluatorParts:
    from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork

    db = postgres_database(config, instruments=instruments)
    # Reads only: goals and preferences from the replica, daily values wherever the read preference allows.
    store = metric_store(config, config.mongo_read_preference, instruments)
    queue = notification_queue(config, instruments)

    def read_uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db, read_only=True)

    def write_uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db)

    observer = observer if observer is not None else process_observer(config, instruments)
    schedule = evaluation_schedule(
        config,
        timed_units(read_uow, instruments, "postgresql"),
        timed(store, instruments, "mongodb", "metric_store"),
        queue,
        clock,
        write_uow=timed_units(write_uow, instruments, "postgresql"),
        observer=observer,
        tracer=tracer,
    )
    return EvaluatorParts(schedule, [db.close, store.close, queue.close], observer)


@dataclass
class DispatcherParts:
    """What a dispatcher process needs in the production profile."""

    dispatcher: Dispatcher
    closers: list[Callable[[], None]]
    observer: Observers = field(default_factory=Observers)


def build_dispatcher(
    config: Config,
    clock: Callable[[], datetime] = utc_now,
    observer: Observers | None = None,
    instruments: Instruments = NO_INSTRUMENTS,
) -> DispatcherParts:
    from fittrack.core.adapters.kafka_notifications import KafkaNotificationSink
    from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork

    db = postgres_database(config, instruments=instruments)
    producer = producer_maker(config, instruments)()
    live: NotificationSink = KafkaNotificationSink(producer, config.live_notifications_topic, instruments=instruments)
    dead_letters = dead_letter_log(config, instruments)

    def uow() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(db)

    observer = observer if observer is not None else process_observer(config, instruments)
    dispatcher = Dispatcher(
        timed_units(uow, instruments, "postgresql"),
        live,
        clock,
        push_channel(config),
        dead_letters,
        dispatch_settings(config),
        observer=observer,
    )
    return DispatcherParts(dispatcher, [db.close, lambda: producer.close(timeout=5), dead_letters.close], observer)


def build_dead_letters(
    config: Config, clock: Callable[[], datetime] = utc_now
) -> tuple[DeadLetters, Callable[[], None]]:
    """The dead letters of the configured profile, for `fittrack-admin`, and what closes them."""
    if config.profile == "embedded":
        from fittrack.core.adapters.sqlite import SqliteDatabase
        from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork

        sqlite = SqliteDatabase(config.database_path)
        sqlite.migrate()
        return DeadLetters(lambda: SqliteUnitOfWork(sqlite), clock), sqlite.close
    from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork

    db = postgres_database(config, pool_max=2)
    log = dead_letter_log(config)

    def close() -> None:
        log.close()
        db.close()

    return DeadLetters(lambda: PostgresUnitOfWork(db), clock, log), close
