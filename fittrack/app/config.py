"""Settings, read once at start-up from the environment (see the README's table)."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fittrack.app.setting_values import (
    ConfigError,
    check_mongo_uri,
    check_pem,
    parse_listen,
    parse_oidc_providers,
    parse_otlp_endpoint,
)
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.oidc import ProviderSettings
from fittrack.core.services.evaluation import EvaluationSettings, parse_settings

PROFILES = ("embedded", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
SWITCHES = ("on", "off")


@dataclass(frozen=True)
class Config:
    profile: str = "embedded"
    listen: str = "127.0.0.1:50051"
    # host:port of a plain-HTTP readiness endpoint for load balancers that cannot send a gRPC health check
    # (HAProxy 2.6, open-source nginx): GET /ready answers 200 while every service is SERVING. Off when empty.
    ready_listen: str = ""
    # host:port of the Prometheus endpoint (GET /metrics) of this process, whatever its role; port 0 picks a
    # free one (logged). Off when empty.
    metrics_listen: str = ""
    # TLS: PEM files of the server's certificate chain and key (both or neither; plaintext without them, for
    # loopback development), and of the CA that signs internal services' client certificates (mutual TLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    data_dir: Path = Path("var")
    sqlite_path: Path | None = None
    token_secret: str = field(default="", repr=False)
    # A JSON file of key id -> secret with one current key, re-read when it changes (fittrack/core/adapters/tokens.py).
    token_keys_file: str = ""
    token_keys_recheck_seconds: float = 5.0
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    password_max_age_days: int = 90
    bcrypt_rounds: int = 12
    # Test stacks only: lets the production profile hash with fewer than 12 rounds.
    allow_low_bcrypt_rounds: int = 0
    # Brute force: failed logins per username per hour and per client address per minute, both counted
    # in the account database (shared by every server); beyond them RESOURCE_EXHAUSTED.
    max_login_failures_per_account: int = 100
    max_login_failures_per_address: int = 20
    # Comma-separated addresses or CIDRs of proxies (the load balancer) whose calls carry the client's
    # address as the last x-forwarded-for entry. Empty: the header is ignored (any client can send it).
    trusted_proxies: str = ""
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
    # text: one readable line per record; json: one object per line, for a log shipper.
    log_format: str = "text"
    # Security events (logins, throttling, refresh-token reuse, password changes, deletions) on `fittrack.audit`.
    audit_log: str = "on"
    # How long a thread may hold the GIL while others wait for it (Python's default is 5 ms). The server
    # hands each call between its event loop, worker threads and Kafka's threads: at 3,000 readings/s,
    # 0.5 ms took the upload ack p50 from 22-27 ms to 15-17 ms and p99 from 80-114 to 64-76 ms.
    gil_switch_interval_ms: float = 0.5
    # Goal evaluation: local times in each user's zone, the active day pace is measured over,
    # the Monday report notice ("off" for none), and how often the scheduler looks for due slots.
    evaluation_times: str = "11:00,16:00,20:00"
    active_day: str = "07:00,22:00"
    report_ready_time: str = "08:00"
    evaluation_tick_seconds: float = 30.0
    evaluation_catch_up_minutes: int = 60
    # Notification pushes: a webhook that receives each notification as JSON (none: no pushes), and
    # retries with exponential backoff and full jitter until the last attempt makes it a dead letter.
    # Not shown by repr (nor are the DSNs and the URI below): URLs may carry credentials.
    webhook_url: str = field(default="", repr=False)
    push_timeout_seconds: float = 5.0
    push_max_attempts: int = 6
    push_backoff_base_seconds: float = 2.0
    push_backoff_max_seconds: float = 3600.0
    # Production profile.
    pg_dsn: str = field(default="", repr=False)
    pg_replica_dsn: str = field(default="", repr=False)  # read-only queries; the primary when empty
    pg_pool_max: int = 20
    kafka_bootstrap: str = ""
    readings_topic: str = "readings"
    notifications_topic: str = "notifications"
    readings_partitions: int = 12
    notifications_partitions: int = 4
    kafka_replication_factor: int = 1
    # How long a starting process waits for Kafka (it may be starting or restarting too) before it gives up.
    kafka_startup_wait_seconds: float = 120.0
    publish_timeout_seconds: float = 10.0
    persister_group: str = "fittrack-persister"
    live_notifications_topic: str = "notifications-live"  # stored notifications, for the servers' open streams
    dead_letter_topic: str = "notifications-dead"
    dispatcher_group: str = "fittrack-dispatcher"
    mongo_uri: str = field(default="", repr=False)
    mongo_database: str = "fittrack"
    mongo_read_preference: str = "primaryPreferred"
    # A MongoDB call that takes longer is given up as UNAVAILABLE (socket and server-selection timeouts).
    mongo_timeout_seconds: float = 5.0
    # FerretDB only: the PostgreSQL database FerretDB stores into. Given it, the metric store indexes
    # FerretDB's tables itself (fittrack/core/adapters/ferretdb_indexes.py); without it, every query reads the table.
    ferretdb_pg_dsn: str = field(default="", repr=False)
    # How often the persister checks those indexes (FerretDB re-creates a table dropped with its collection).
    store_upkeep_seconds: float = 60.0
    # Single sign-on: OpenID Providers as JSON, or the path of a JSON file (see oidc_provider_settings).
    # Not shown by repr: it may hold client secrets.
    oidc_providers: str = field(default="", repr=False)
    oidc_timeout_seconds: float = 5.0
    # Tracing: where spans go over OTLP/gRPC (host:port, http://host:port, or https://host:port for TLS); off
    # when empty. Only this turns it on: OTEL_EXPORTER_OTLP_ENDPOINT, set on a host for another program, does not.
    otlp_endpoint: str = ""
    # Of the traces that start here (not joined from a caller, whose choice is kept), the share recorded.
    trace_sample_ratio: float = 1.0

    def otlp_target(self) -> tuple[str, bool] | None:
        """FITTRACK_OTLP_ENDPOINT as (host:port, TLS or not) for the OTLP/gRPC exporter; None when tracing is off."""
        return parse_otlp_endpoint(self.otlp_endpoint)

    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """FITTRACK_TRUSTED_PROXIES as networks (an address is a network of one); ConfigError naming a bad entry."""
        networks = []
        for entry in self.trusted_proxies.split(","):
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as error:
                raise ConfigError(
                    f"FITTRACK_TRUSTED_PROXIES must be comma-separated IP addresses or CIDRs, such as "
                    f"10.0.0.5,192.168.1.0/24 or fd00::/64; {entry!r} is not one ({error})"
                ) from None
        return tuple(networks)

    def oidc_provider_settings(self) -> tuple[ProviderSettings, ...]:
        """The configured OpenID Providers; ConfigError naming what is wrong."""
        return parse_oidc_providers(self.oidc_providers)

    def _validate_tls(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            given, missing = (
                ("FITTRACK_TLS_CERT_FILE", "FITTRACK_TLS_KEY_FILE")
                if self.tls_cert_file
                else ("FITTRACK_TLS_KEY_FILE", "FITTRACK_TLS_CERT_FILE")
            )
            raise ConfigError(f"{given} is set but {missing} is not: TLS needs both the certificate and its key")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError(
                "FITTRACK_TLS_CLIENT_CA_FILE needs FITTRACK_TLS_CERT_FILE and FITTRACK_TLS_KEY_FILE: "
                "mutual TLS is TLS with client certificates"
            )
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(self, name)
            if path:
                check_pem(f"FITTRACK_{name.upper()}", Path(path))

    def tls_files(self) -> tuple[bytes, bytes, bytes | None] | None:
        """Certificate chain, key and client CA (None: no client certificates), or None for plaintext."""
        if not self.tls_cert_file:
            return None
        client_ca = Path(self.tls_client_ca_file).read_bytes() if self.tls_client_ca_file else None
        return Path(self.tls_cert_file).read_bytes(), Path(self.tls_key_file).read_bytes(), client_ca

    def evaluation_settings(self) -> EvaluationSettings:
        return parse_settings(self.evaluation_times, self.report_ready_time, self.active_day)

    @property
    def audit_log_on(self) -> bool:
        return self.audit_log.lower() == "on"

    @property
    def logging_level(self) -> int:
        """FITTRACK_LOG_LEVEL, in any case, as the logging module's number."""
        return logging.getLevelNamesMapping()[self.log_level.upper()]

    def listen_address(self) -> tuple[str, int]:
        """FITTRACK_LISTEN as (host, port), brackets of an IPv6 host removed; ConfigError unless host:port."""
        return parse_listen(self.listen)

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
                what = {int: "whole number", float: "number"}.get(kind, kind.__name__)
                raise ConfigError(f"FITTRACK_{name.upper()}={raw!r} is not a {what}") from None
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"FITTRACK_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        self.listen_address()
        if self.ready_listen:
            parse_listen(self.ready_listen, "FITTRACK_READY_LISTEN")
        if self.metrics_listen:
            parse_listen(self.metrics_listen, "FITTRACK_METRICS_LISTEN")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"FITTRACK_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (in any case), got {self.log_level!r}"
            )
        if self.log_format.lower() not in LOG_FORMATS:
            raise ConfigError(f"FITTRACK_LOG_FORMAT must be {' or '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.audit_log.lower() not in SWITCHES:
            raise ConfigError(f"FITTRACK_AUDIT_LOG must be on or off, got {self.audit_log!r}")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("FITTRACK_BCRYPT_ROUNDS must be 4 to 31")
        if self.allow_low_bcrypt_rounds not in (0, 1):
            raise ConfigError("FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS must be 0 or 1")
        self._validate_tls()
        if self.profile == "production" and self.bcrypt_rounds < 12 and not self.allow_low_bcrypt_rounds:
            raise ConfigError(
                "FITTRACK_BCRYPT_ROUNDS must be at least 12 in the production profile "
                "(test stacks may set FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS=1)"
            )
        if self.max_login_failures_per_account < 1 or self.max_login_failures_per_address < 1:
            raise ConfigError(
                "FITTRACK_MAX_LOGIN_FAILURES_PER_ACCOUNT and FITTRACK_MAX_LOGIN_FAILURES_PER_ADDRESS must be at least 1"
            )
        self.trusted_proxy_networks()
        if self.password_max_age_days < 0:
            raise ConfigError("FITTRACK_PASSWORD_MAX_AGE_DAYS must be 0 (never) or more")
        if self.token_secret and len(self.token_secret.encode()) < 32:
            raise ConfigError("FITTRACK_TOKEN_SECRET must be at least 32 bytes")
        if not 0 < self.access_token_ttl_seconds <= 900:
            raise ConfigError("FITTRACK_ACCESS_TOKEN_TTL_SECONDS must be 1 to 900 (at most 15 minutes)")
        if self.token_secret and self.token_keys_file:
            raise ConfigError("set FITTRACK_TOKEN_SECRET or FITTRACK_TOKEN_KEYS_FILE, not both")
        if not 0 <= self.token_keys_recheck_seconds <= 3600:
            raise ConfigError("FITTRACK_TOKEN_KEYS_RECHECK_SECONDS must be 0 to 3600")
        if self.token_keys_file:
            from fittrack.core.adapters.tokens import load_keyring

            try:
                load_keyring(Path(self.token_keys_file))
            except ValueError as error:  # its message never quotes a secret
                raise ConfigError(f"FITTRACK_TOKEN_KEYS_FILE {self.token_keys_file}: {error}") from None
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
        # Each round checks every open stream's session: no interval would make it a busy loop on the database.
        if not 0 < self.stream_recheck_seconds <= 3600:
            raise ConfigError("FITTRACK_STREAM_RECHECK_SECONDS must be above 0 and at most 3600")
        if self.shutdown_grace_seconds < 0:
            raise ConfigError("FITTRACK_SHUTDOWN_GRACE_SECONDS must be 0 or more")
        if self.max_readings_per_upload < 1 or self.refresh_token_ttl_days < 1:
            raise ConfigError("FITTRACK_MAX_READINGS_PER_UPLOAD and FITTRACK_REFRESH_TOKEN_TTL_DAYS must be at least 1")
        for name in ("pg_pool_max", "readings_partitions", "notifications_partitions", "kafka_replication_factor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"FITTRACK_{name.upper()} must be at least 1")
        if self.publish_timeout_seconds <= 0:
            raise ConfigError("FITTRACK_PUBLISH_TIMEOUT_SECONDS must be above 0")
        if self.profile == "production":
            missing = [
                f"FITTRACK_{name.upper()}"
                for name in ("pg_dsn", "kafka_bootstrap", "mongo_uri")
                if not getattr(self, name)
            ]
            if missing:
                raise ConfigError(f"the production profile needs {', '.join(missing)} (see `make services`)")
            self._validate_services()
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
        if not 0 < self.mongo_timeout_seconds <= 300 or self.store_upkeep_seconds < 0.1:
            raise ConfigError(
                "FITTRACK_MONGO_TIMEOUT_SECONDS must be above 0 and at most 300, "
                "FITTRACK_STORE_UPKEEP_SECONDS at least 0.1"
            )
        if not 0.05 <= self.gil_switch_interval_ms <= 100:
            raise ConfigError("FITTRACK_GIL_SWITCH_INTERVAL_MS must be 0.05 to 100")
        if self.kafka_startup_wait_seconds < 0:
            raise ConfigError("FITTRACK_KAFKA_STARTUP_WAIT_SECONDS must be 0 or more")
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
        if not 0 < self.oidc_timeout_seconds <= 60:
            raise ConfigError("FITTRACK_OIDC_TIMEOUT_SECONDS must be above 0 and at most 60")
        self.oidc_provider_settings()
        self.otlp_target()
        if not 0 <= self.trace_sample_ratio <= 1:
            raise ConfigError("FITTRACK_TRACE_SAMPLE_RATIO must be 0 to 1 (the share of new traces recorded)")

    def _validate_services(self) -> None:
        """The production profile's addresses are well formed, so a typo is a message here rather than a
        traceback from a driver later. Messages never quote a DSN or URI: they may hold a password."""
        from psycopg2 import ProgrammingError
        from psycopg2.extensions import parse_dsn

        for name in ("pg_dsn", "pg_replica_dsn", "ferretdb_pg_dsn"):
            dsn = getattr(self, name)
            try:
                if dsn:
                    parse_dsn(dsn)
            except ProgrammingError:
                raise ConfigError(
                    f"FITTRACK_{name.upper()} is not a PostgreSQL connection string; "
                    "write it as postgresql://user:password@host:port/database"
                ) from None
        for server in self.kafka_bootstrap.split(","):
            try:
                parse_listen(server.strip())
            except ConfigError:
                raise ConfigError(
                    f"FITTRACK_KAFKA_BOOTSTRAP must be a comma-separated list of host:port (port 1-65535), "
                    f"such as broker1:9092,broker2:9092; got {self.kafka_bootstrap!r}"
                ) from None
        check_mongo_uri(self.mongo_uri)


READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")

_VARIABLES = {
    "profile": str,
    "listen": str,
    "ready_listen": str,
    "metrics_listen": str,
    "tls_cert_file": str,
    "tls_key_file": str,
    "tls_client_ca_file": str,
    "data_dir": Path,
    "sqlite_path": Path,
    "token_secret": str,
    "token_keys_file": str,
    "token_keys_recheck_seconds": float,
    "access_token_ttl_seconds": int,
    "refresh_token_ttl_days": int,
    "password_max_age_days": int,
    "bcrypt_rounds": int,
    "allow_low_bcrypt_rounds": int,
    "max_login_failures_per_account": int,
    "max_login_failures_per_address": int,
    "trusted_proxies": str,
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
    "log_format": str,
    "audit_log": str,
    "gil_switch_interval_ms": float,
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
    "kafka_startup_wait_seconds": float,
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
    "mongo_timeout_seconds": float,
    "ferretdb_pg_dsn": str,
    "store_upkeep_seconds": float,
    "oidc_providers": str,
    "oidc_timeout_seconds": float,
    "otlp_endpoint": str,
    "trace_sample_ratio": float,
}
