"""Settings, read once at start-up from the environment (see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    mongo_uri: str = ""
    mongo_database: str = "fittrack"
    mongo_read_preference: str = "primaryPreferred"

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
        if self.mongo_read_preference not in READ_PREFERENCES:
            raise ConfigError(f"FITTRACK_MONGO_READ_PREFERENCE must be one of {', '.join(READ_PREFERENCES)}")


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
    "mongo_uri": str,
    "mongo_database": str,
    "mongo_read_preference": str,
}
