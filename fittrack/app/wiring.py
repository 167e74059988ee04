"""Wires the services to the adapters the configuration asks for: the server process's App, and the services and
settings the worker processes share (worker_parts.py). The adapters themselves are made in stores.py."""

from __future__ import annotations

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
from fittrack.app.stores import Dependency, Stores, embedded_stores, production_stores
from fittrack.app.tracing import Tracing, tracing_off
from fittrack.core.adapters.audit import AuditLog
from fittrack.core.adapters.common_passwords import CommonPasswordList
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments
from fittrack.core.adapters.live import LiveNotifications
from fittrack.core.adapters.metrics_observer import MetricsObserver
from fittrack.core.adapters.observers import Observers
from fittrack.core.adapters.oidc import HttpIdentityProvider
from fittrack.core.adapters.passwords import BcryptHasher
from fittrack.core.adapters.report_pdf import MatplotlibReportRenderer
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
    TokenSigner,
)
from fittrack.core.services.accounts import Accounts, AccountSettings
from fittrack.core.services.dispatch import Dispatcher, DispatchSettings
from fittrack.core.services.evaluation import GoalEvaluator, WorkClaims
from fittrack.core.services.expiry import PasswordExpiryNotifier
from fittrack.core.services.goals import Goals
from fittrack.core.services.housekeeping import Housekeeping
from fittrack.core.services.metrics import IngestLimits, Metrics
from fittrack.core.services.notifications import Notifications
from fittrack.core.services.persistence import Persister
from fittrack.core.services.reports import Reports
from fittrack.workers.evaluator import EvaluationSchedule, EvaluatorInBackground


def utc_now() -> datetime:
    return datetime.now(UTC)


class Background(Protocol):
    """Something that runs beside the gRPC server in the same process."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


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
        stores, dependencies, relay = embedded_stores(config, instruments), [], None
    else:
        stores, dependencies, relay = production_stores(config, live, instruments)
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


def push_channel(config: Config) -> PushChannel | None:
    """The webhook when one is configured; no pushes otherwise. FCM or APNs would be chosen here too."""
    if not config.webhook_url:
        return None
    from fittrack.core.adapters.push import WebhookChannel

    return WebhookChannel(config.webhook_url, config.push_timeout_seconds)


def dispatch_settings(config: Config) -> DispatchSettings:
    retry = RetryPolicy(config.push_max_attempts, config.push_backoff_base_seconds, config.push_backoff_max_seconds)
    return DispatchSettings(retry, config.push_timeout_seconds)


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
