"""Wires the services to the adapters the configuration asks for."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from opentelemetry.trace import Tracer

from fittrack.app.config import Config
from fittrack.app.process import close_all
from fittrack.app.tracing import Tracing, tracing_off
from fittrack.core.adapters.audit import AuditLog
from fittrack.core.adapters.common_passwords import CommonPasswordList
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments, count_producer_retries, mongo_listeners
from fittrack.core.adapters.live import LiveNotifications
from fittrack.core.adapters.metrics_observer import MetricsObserver
from fittrack.core.adapters.observers import Observers
from fittrack.core.adapters.oidc import HttpIdentityProvider
from fittrack.core.adapters.passwords import BcryptHasher
from fittrack.core.adapters.report_pdf import MatplotlibReportRenderer
from fittrack.core.adapters.store_timing import timed, timed_units
from fittrack.core.adapters.tokens import JwtSigner, KeysFile
from fittrack.core.domain.delivery import RetryPolicy
from fittrack.core.domain.metrics import BatchLimits
from fittrack.core.domain.throttle import AddressPolicy, ThrottlePolicy
from fittrack.core.ports import (
    AccountsUnitOfWork,
    CommonPasswords,
    MetricStore,
    NotificationQueue,
    NotificationSink,
    Observer,
    PasswordHasher,
    PushChannel,
    ReadingBus,
    TokenSigner,
)
from fittrack.core.services.accounts import Accounts, AccountSettings
from fittrack.core.services.dispatch import DeadLetters, Dispatcher, DispatchSettings
from fittrack.core.services.evaluation import GoalEvaluator, WorkClaims
from fittrack.core.services.expiry import PasswordExpiryNotifier
from fittrack.core.services.goals import Goals
from fittrack.core.services.housekeeping import Housekeeping
from fittrack.core.services.metrics import IngestLimits, Metrics
from fittrack.core.services.notifications import Notifications
from fittrack.core.services.persistence import FirstCopies, Persister
from fittrack.core.services.reports import Reports
from fittrack.workers.evaluator import EvaluationSchedule, EvaluatorInBackground

METRIC_SERVICE = "fittrack.v1.MetricService"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Background(Protocol):
    """Something that runs beside the gRPC server in the same process."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Dependency:
    """Something the server's calls need, checked every second while the server runs."""

    what: str  # for the log
    check: Callable[[], bool]
    # The gRPC services that cannot work without it; empty: every service.
    services: tuple[str, ...] = ()


@dataclass
class App:
    """Everything a server process needs, built once at start-up."""

    config: Config
    accounts: Accounts
    goals: Goals
    metrics: Metrics
    reports: Reports
    notifications: Notifications
    live: LiveNotifications
    background: list[Background] = field(default_factory=list)
    # What the server's health service watches (production): services that need one report NOT_SERVING without it.
    dependencies: list[Dependency] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Where new notifications go (the goal evaluator sends its nudges here): the dispatcher stores and delivers them.
    notification_queue: NotificationQueue | None = None
    # What the services report to (process_observer): the server's interceptors may report there too.
    observer: Observers = field(default_factory=Observers)
    # The process's tracing: its provider is shut down (the spans it holds exported) after everything else closed.
    tracing: Tracing = field(default_factory=tracing_off)
    # The process's Prometheus instruments (NoInstruments when FITTRACK_METRICS_LISTEN is unset).
    instruments: Instruments = NO_INSTRUMENTS

    def close(self) -> None:
        close_all([self.tracing.shutdown, *self.closers])  # tracing last: it exports the spans of the last work


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


def process_observer(config: Config, instruments: Instruments = NO_INSTRUMENTS) -> Observers:
    """The one observer of a process, which all its services report to: the audit log (FITTRACK_AUDIT_LOG)
    and, beside it, the metrics' counters when FITTRACK_METRICS_LISTEN is set."""
    observers: list[Observer] = [AuditLog()] if config.audit_log_on else []
    if instruments.enabled:
        observers.append(MetricsObserver(instruments))
    return Observers(observers)


def build_app(
    config: Config,
    clock: Callable[[], datetime] = utc_now,
    observer: Observers | None = None,
    tracing: Tracing | None = None,
    instruments: Instruments = NO_INSTRUMENTS,
) -> App:
    """The server process's parts; `tracing` is the process's (off when not given: create_server builds it),
    `instruments` its Prometheus instruments (off when not given)."""
    observer = observer if observer is not None else process_observer(config, instruments)
    live = LiveNotifications()
    tracing = tracing or tracing_off()
    if config.profile == "embedded":
        stores, dependencies, relay = _embedded_stores(config, instruments), [], None
    else:
        stores, dependencies, relay = _production_stores(config, live, instruments)
    try:
        app = _app_on(stores, dependencies, relay, live, config, clock, observer, tracing)
        app.instruments = instruments
        return app
    except BaseException:
        # A part that cannot be made (an unreadable token secret, say) must not leave the stores open: the
        # data directory's lock among them, which would refuse the next start in this process.
        close_all(stores.closers)
        raise


def _app_on(
    stores: Stores,
    dependencies: list[Dependency],
    relay: Background | None,
    live: LiveNotifications,
    config: Config,
    clock: Callable[[], datetime],
    observer: Observers,
    tracing: Tracing,
) -> App:
    background: list[Background] = []
    if relay is None:  # embedded: the workers run in this process
        persister = persister_on(stores, clock)
        from fittrack.workers.dispatcher import EmbeddedDispatcher
        from fittrack.workers.persister import EmbeddedPersister

        # Before the persister, which stops first (in reverse): what it still sends is handled at the next start.
        dispatcher = dispatcher_on(stores, live, config, clock, observer)
        background.append(EmbeddedDispatcher(stores.notification_queue, dispatcher))
        background.append(EmbeddedPersister(stores.bus, persister))
        schedule = evaluation_schedule(
            config,
            stores.read_uow,
            stores.metric_store,
            stores.notification_queue,
            clock,
            write_uow=stores.uow,
            observer=observer,
            tracer=tracing.tracer("fittrack.workers.evaluator"),
        )
        background.append(EvaluatorInBackground(schedule))
    else:
        background.append(relay)
    services = build_services(stores, config, clock, observer=observer)
    return App(
        config=config,
        accounts=services.accounts,
        goals=services.goals,
        metrics=services.metrics,
        reports=services.reports,
        notifications=services.notifications,
        live=live,
        background=background,
        dependencies=dependencies,
        closers=stores.closers,
        notification_queue=stores.notification_queue,
        observer=observer,
        tracing=tracing,
    )


@dataclass
class Services:
    """The use cases over one profile's stores: what the servicers call."""

    accounts: Accounts
    goals: Goals
    metrics: Metrics
    reports: Reports
    notifications: Notifications


def build_services(
    stores: Stores,
    config: Config,
    clock: Callable[[], datetime],
    *,
    hasher: PasswordHasher | None = None,
    signer: TokenSigner | None = None,
    common_passwords: CommonPasswords | None = None,
    observer: Observer | None = None,
) -> Services:
    """The services on the given stores, set as the configuration says. The server passes the stores and
    its observer; unit tests pass in-memory stores, a fast hasher, a fixed signer, a short password list and
    an observer that records, and so run the same wiring."""
    limits = IngestLimits(BatchLimits(config.max_readings_per_batch), config.max_readings_per_upload)
    return Services(
        accounts=Accounts(
            stores.uow,
            stores.metric_store,
            hasher or BcryptHasher(config.bcrypt_rounds),
            signer or JwtSigner(_token_keys(config), timedelta(seconds=config.access_token_ttl_seconds)),
            clock,
            account_settings(config),
            stores.lookup_uow,
            common_passwords=common_passwords or CommonPasswordList(),
            identity_providers=identity_providers(config),
            observer=observer,
        ),
        goals=Goals(stores.uow, stores.metric_store, clock),
        metrics=Metrics(stores.lookup_uow, stores.metric_store, stores.bus, clock, limits),
        reports=Reports(stores.read_uow, stores.metric_store, clock, MatplotlibReportRenderer()),
        notifications=Notifications(stores.uow),
    )


def account_settings(config: Config) -> AccountSettings:
    return AccountSettings(
        config.password_max_age_days,
        timedelta(days=config.refresh_token_ttl_days),
        throttle_policy(config),
        address_policy(config),
    )


def persister_on(stores: Stores, clock: Callable[[], datetime]) -> Persister:
    """The embedded persister's handler: readings off the ingest log into the metric store."""
    return Persister(stores.metric_store, stores.uow, stores.notification_queue, clock)


def dispatcher_on(
    stores: Stores,
    live: NotificationSink,
    config: Config,
    clock: Callable[[], datetime],
    observer: Observer | None = None,
) -> Dispatcher:
    """The embedded dispatcher's handler: notifications off the outbox, stored, shown live and pushed."""
    return Dispatcher(stores.uow, live, clock, push_channel(config), None, dispatch_settings(config), observer=observer)


def identity_providers(config: Config) -> dict[str, HttpIdentityProvider]:
    """The configured OpenID Providers by name; each fetches its discovery document and keys on first use,
    so a provider that is down at start-up does not stop the server (its logins answer UNAVAILABLE)."""
    return {
        settings.name: HttpIdentityProvider(settings, timeout=config.oidc_timeout_seconds)
        for settings in config.oidc_provider_settings()
    }


def _embedded_stores(config: Config, instruments: Instruments = NO_INSTRUMENTS) -> Stores:
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


def _production_stores(config: Config, live: LiveNotifications, instruments: Instruments = NO_INSTRUMENTS):
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
    producer = _producer_maker(config, instruments)
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


def _postgres(config: Config, pool_max: int | None = None, instruments: Instruments = NO_INSTRUMENTS):
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


def _producer_maker(config: Config, instruments: Instruments):
    """What makes each Kafka producer of a process (a failed one is replaced), its retries counted."""
    from fittrack.core.adapters.kafka import make_producer

    return lambda: count_producer_retries(
        make_producer(config.kafka_bootstrap, config.publish_timeout_seconds), instruments
    )


def _notification_queue(config: Config, instruments: Instruments = NO_INSTRUMENTS):
    from fittrack.core.adapters.kafka_notifications import KafkaNotificationQueue

    return KafkaNotificationQueue(
        _producer_maker(config, instruments), config.notifications_topic, config.publish_timeout_seconds, instruments
    )


def _dead_letter_log(config: Config, instruments: Instruments = NO_INSTRUMENTS):
    from fittrack.core.adapters.kafka_notifications import KafkaDeadLetterLog

    return KafkaDeadLetterLog(
        config.kafka_bootstrap,
        config.dead_letter_topic,
        _producer_maker(config, instruments),
        config.publish_timeout_seconds,
        instruments,
    )


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

    db = _postgres(config, instruments=instruments)
    store = metric_store(config, "primary", instruments)
    queue = _notification_queue(config, instruments)

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


def throttle_policy(config: Config) -> ThrottlePolicy:
    return ThrottlePolicy(max_failures=config.max_login_failures_per_account)


def address_policy(config: Config) -> AddressPolicy:
    return AddressPolicy(max_failures=config.max_login_failures_per_address)


def evaluation_schedule(
    config: Config,
    read_uow: Callable[[], AccountsUnitOfWork],
    store: MetricStore,
    queue: NotificationQueue,
    clock: Callable[[], datetime],
    write_uow: Callable[[], AccountsUnitOfWork] | None = None,
    observer: Observer | None = None,
    tracer: Tracer | None = None,
) -> EvaluationSchedule:
    """Goal evaluation on its tick, with the password-expiry notices and, given a writing unit of work, the
    hourly housekeeping beside it."""
    # With a writing unit of work, evaluators share the work through claims; without, this one does it all.
    claims = WorkClaims(write_uow, clock) if write_uow is not None else None
    evaluator = GoalEvaluator(read_uow, store, queue, clock, config.evaluation_settings(), claims, observer)
    catch_up = timedelta(minutes=config.evaluation_catch_up_minutes)
    also: list = [PasswordExpiryNotifier(read_uow, queue, clock)]
    if write_uow is not None:
        also.append(Housekeeping(write_uow, throttle_policy(config), address_policy(config)))
    return EvaluationSchedule(evaluator, clock, config.evaluation_tick_seconds, catch_up, also=also, tracer=tracer)


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

    db = _postgres(config, instruments=instruments)
    # Reads only: goals and preferences from the replica, daily values wherever the read preference allows.
    store = metric_store(config, config.mongo_read_preference, instruments)
    queue = _notification_queue(config, instruments)

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


def push_channel(config: Config) -> PushChannel | None:
    """The webhook when one is configured; no pushes otherwise. FCM or APNs would be chosen here too."""
    if not config.webhook_url:
        return None
    from fittrack.core.adapters.push import WebhookChannel

    return WebhookChannel(config.webhook_url, config.push_timeout_seconds)


def dispatch_settings(config: Config) -> DispatchSettings:
    retry = RetryPolicy(config.push_max_attempts, config.push_backoff_base_seconds, config.push_backoff_max_seconds)
    return DispatchSettings(retry, config.push_timeout_seconds)


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

    db = _postgres(config, instruments=instruments)
    producer = _producer_maker(config, instruments)()
    live: NotificationSink = KafkaNotificationSink(producer, config.live_notifications_topic, instruments=instruments)
    dead_letters = _dead_letter_log(config, instruments)

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

    db = _postgres(config, pool_max=2)
    log = _dead_letter_log(config)

    def close() -> None:
        log.close()
        db.close()

    return DeadLetters(lambda: PostgresUnitOfWork(db), clock, log), close


def _token_keys(config: Config) -> bytes | KeysFile:
    """The keys file when one is configured (re-read when it changes); the single secret otherwise."""
    if config.token_keys_file:
        return KeysFile(Path(config.token_keys_file), config.token_keys_recheck_seconds)
    return _token_secret(config)


def _token_secret(config: Config) -> bytes:
    """The configured secret, or one generated on first start and kept beside the data.

    Keeping it means tokens survive a restart of a self-hosted server that
    was never given a secret. Servers behind one load balancer must share
    FITTRACK_TOKEN_SECRET.
    """
    if config.token_secret:
        return config.token_secret.encode()
    path = Path(config.data_dir) / "token-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
