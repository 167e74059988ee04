"""Wires the services to the adapters the configuration asks for."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.adapters.live import LiveNotifications
from core.adapters.passwords import BcryptHasher
from core.adapters.sqlite import SqliteDatabase, SqliteMetricStore, SqliteReadingBus, SqliteUnitOfWork
from core.adapters.tokens import JwtSigner
from core.config import Config, ConfigError
from core.domain.metrics import BatchLimits
from core.services.accounts import Accounts, AccountSettings
from core.services.goals import Goals
from core.services.metrics import IngestLimits, Metrics
from core.services.notifications import Notifications
from core.services.persistence import Persister
from core.services.reports import Reports


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    persister: Persister
    bus: SqliteReadingBus
    close: Callable[[], None]


def build_app(config: Config, clock: Callable[[], datetime] = utc_now) -> App:
    if config.profile != "embedded":
        raise ConfigError(f"profile {config.profile!r} is not available in this build; use FITTRACK_PROFILE=embedded")
    db = SqliteDatabase(config.database_path)
    db.migrate()

    def uow() -> SqliteUnitOfWork:
        return SqliteUnitOfWork(db)

    store = SqliteMetricStore(db)
    bus = SqliteReadingBus(db)
    live = LiveNotifications()
    signer = JwtSigner(_token_secret(config), timedelta(seconds=config.access_token_ttl_seconds))
    limits = IngestLimits(BatchLimits(config.max_readings_per_batch), config.max_readings_per_upload)
    settings = AccountSettings(config.password_max_age_days, timedelta(days=config.refresh_token_ttl_days))
    return App(
        config=config,
        accounts=Accounts(uow, store, BcryptHasher(config.bcrypt_rounds), signer, clock, settings),
        goals=Goals(uow, store, clock),
        metrics=Metrics(uow, store, bus, clock, limits),
        reports=Reports(uow, store, clock),
        notifications=Notifications(uow),
        live=live,
        persister=Persister(store, uow, live, clock),
        bus=bus,
        close=db.close,
    )


def _token_secret(config: Config) -> bytes:
    """The configured secret, or one generated on first start and kept beside the data.

    Keeping it means tokens survive a restart of a self-hosted server that
    was never given a secret.
    """
    if config.token_secret:
        return config.token_secret.encode()
    path = Path(config.data_dir) / "token-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
