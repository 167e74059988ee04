"""Settings, read once at start-up from the environment (see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from core.domain.errors import InvalidArgument
from core.services.evaluation import EvaluationSettings, parse_settings

PROFILES = ("embedded", "production")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Config:
    profile: str = "embedded"
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("var")
    sqlite_path: Path | None = None
    token_secret: str = field(default="", repr=False)
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    password_max_age_days: int = 90
    bcrypt_rounds: int = 12
    max_readings_per_batch: int = 1000
    max_readings_per_upload: int = 200_000
    max_message_bytes: int = 4 * 1024 * 1024
    max_streams_per_user: int = 8
    stream_window: int = 16  # batches in flight per SyncReadings stream before the server stops reading
    keepalive_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    shutdown_grace_seconds: float = 5.0
    stream_recheck_seconds: float = 15.0
    log_level: str = "INFO"
    # Goal evaluation: local times in each user's zone, the active day pace is measured over,
    # the Monday report notice ("off" for none), and how often the scheduler looks for due slots.
    evaluation_times: str = "11:00,16:00,20:00"
    active_day: str = "07:00,22:00"
    report_ready_time: str = "08:00"
    evaluation_tick_seconds: float = 30.0
    evaluation_catch_up_minutes: int = 60
    # Notification pushes: a webhook that receives each notification as JSON (none: no pushes), and
    # retries with exponential backoff and full jitter until the last attempt makes it a dead letter.
    webhook_url: str = ""
    push_timeout_seconds: float = 5.0
    push_max_attempts: int = 6
    push_backoff_base_seconds: float = 2.0
    push_backoff_max_seconds: float = 3600.0
    # Production profile.
    pg_dsn: str = ""
    pg_replica_dsn: str = ""  # read-only queries; the primary when empty
    pg_pool_max: int = 20
    kafka_bootstrap: str = ""
    readings_topic: str = "readings"
    notifications_topic: str = "notifications"
    readings_partitions: int = 12
    notifications_partitions: int = 4
    kafka_replication_factor: int = 1
    publish_timeout_seconds: float = 10.0
    persister_group: str = "fittrack-persister"
    live_notifications_topic: str = "notifications-live"  # stored notifications, for the servers' open streams
    dead_letter_topic: str = "notifications-dead"
    dispatcher_group: str = "fittrack-dispatcher"
    mongo_uri: str = ""
    mongo_database: str = "fittrack"
    mongo_read_preference: str = "primaryPreferred"

    def evaluation_settings(self) -> EvaluationSettings:
        return parse_settings(self.evaluation_times, self.report_ready_time, self.active_day)

    @property
    def database_path(self) -> Path:
        return self.sqlite_path or self.data_dir / "fittrack.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Config:
        env = os.environ if env is None else env
        values: dict = {}
        for name, kind in _VARIABLES.items():
            raw = env.get(f"FITTRACK_{name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ConfigError(f"FITTRACK_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"FITTRACK_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("FITTRACK_BCRYPT_ROUNDS must be 4 to 31")
        if self.password_max_age_days < 0:
            raise ConfigError("FITTRACK_PASSWORD_MAX_AGE_DAYS must be 0 (never) or more")
        if self.token_secret and len(self.token_secret.encode()) < 32:
            raise ConfigError("FITTRACK_TOKEN_SECRET must be at least 32 bytes")
        if not 0 < self.access_token_ttl_seconds <= 3600:
            raise ConfigError("FITTRACK_ACCESS_TOKEN_TTL_SECONDS must be 1 to 3600")
        if not 1 <= self.max_readings_per_batch <= 100_000:
            raise ConfigError("FITTRACK_MAX_READINGS_PER_BATCH must be 1 to 100000")
        if self.max_message_bytes < 64 * 1024:
            raise ConfigError("FITTRACK_MAX_MESSAGE_BYTES must be at least 65536")
        if self.max_streams_per_user < 1:
            raise ConfigError("FITTRACK_MAX_STREAMS_PER_USER must be at least 1")
        if not 1 <= self.stream_window <= 1024:
            raise ConfigError("FITTRACK_STREAM_WINDOW must be 1 to 1024")
        if self.keepalive_seconds < 1 or self.keepalive_timeout_seconds <= 0:
            raise ConfigError(
                "FITTRACK_KEEPALIVE_SECONDS must be at least 1 and FITTRACK_KEEPALIVE_TIMEOUT_SECONDS above 0"
            )
        if self.profile == "production":
            missing = [
                f"FITTRACK_{name.upper()}"
                for name in ("pg_dsn", "kafka_bootstrap", "mongo_uri")
                if not getattr(self, name)
            ]
            if missing:
                raise ConfigError(f"the production profile needs {', '.join(missing)} (see `make services`)")
        if not 0.05 <= self.evaluation_tick_seconds <= 3600 or self.evaluation_catch_up_minutes < 0:
            raise ConfigError(
                "FITTRACK_EVALUATION_TICK_SECONDS must be 0.05 to 3600 "
                "and FITTRACK_EVALUATION_CATCH_UP_MINUTES 0 or more"
            )
        try:
            self.evaluation_settings()
        except InvalidArgument as error:  # its message names the variable
            raise ConfigError(str(error)) from None
        if self.mongo_read_preference not in READ_PREFERENCES:
            raise ConfigError(f"FITTRACK_MONGO_READ_PREFERENCE must be one of {', '.join(READ_PREFERENCES)}")
        if self.webhook_url and urlsplit(self.webhook_url).scheme not in ("http", "https"):
            raise ConfigError("FITTRACK_WEBHOOK_URL must be an http:// or https:// URL (or empty for no pushes)")
        if not 0 < self.push_timeout_seconds <= 300 or self.push_max_attempts < 1:
            raise ConfigError(
                "FITTRACK_PUSH_TIMEOUT_SECONDS must be above 0 and at most 300, FITTRACK_PUSH_MAX_ATTEMPTS at least 1"
            )
        if not 0 < self.push_backoff_base_seconds <= self.push_backoff_max_seconds:
            raise ConfigError(
                "FITTRACK_PUSH_BACKOFF_BASE_SECONDS must be above 0 and at most FITTRACK_PUSH_BACKOFF_MAX_SECONDS"
            )


READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")

_VARIABLES = {
    "profile": str,
    "listen": str,
    "data_dir": Path,
    "sqlite_path": Path,
    "token_secret": str,
    "access_token_ttl_seconds": int,
    "refresh_token_ttl_days": int,
    "password_max_age_days": int,
    "bcrypt_rounds": int,
    "max_readings_per_batch": int,
    "max_readings_per_upload": int,
    "max_message_bytes": int,
    "max_streams_per_user": int,
    "stream_window": int,
    "keepalive_seconds": float,
    "keepalive_timeout_seconds": float,
    "shutdown_grace_seconds": float,
    "stream_recheck_seconds": float,
    "log_level": str,
    "evaluation_times": str,
    "active_day": str,
    "report_ready_time": str,
    "evaluation_tick_seconds": float,
    "evaluation_catch_up_minutes": int,
    "pg_dsn": str,
    "pg_replica_dsn": str,
    "pg_pool_max": int,
    "kafka_bootstrap": str,
    "readings_topic": str,
    "notifications_topic": str,
    "readings_partitions": int,
    "notifications_partitions": int,
    "kafka_replication_factor": int,
    "publish_timeout_seconds": float,
    "persister_group": str,
    "webhook_url": str,
    "push_timeout_seconds": float,
    "push_max_attempts": int,
    "push_backoff_base_seconds": float,
    "push_backoff_max_seconds": float,
    "live_notifications_topic": str,
    "dead_letter_topic": str,
    "dispatcher_group": str,
    "mongo_uri": str,
    "mongo_database": str,
    "mongo_read_preference": str,
}
