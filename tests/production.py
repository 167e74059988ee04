"""The production profile for tests: the services `make services` started, plus
per-run databases, topics and persister processes so runs never see each other's data."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pymongo
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

ROOT = Path(__file__).resolve().parent.parent
SERVICES_ENV = ROOT / "var" / "services.env"
SERVICES = ["bash", str(ROOT / "infra" / "services.sh")]
NOT_RUNNING = "the production services are not running: run `make services` (make test does it for you)"


def service_settings() -> dict[str, str]:
    """DSN, bootstrap servers and URI of the running services, from the environment or var/services.env."""
    settings = {}
    if SERVICES_ENV.exists():
        for line in SERVICES_ENV.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.startswith("FITTRACK_"):
                settings[name] = value.strip()
    for name in ("FITTRACK_PG_DSN", "FITTRACK_KAFKA_BOOTSTRAP", "FITTRACK_MONGO_URI", "FITTRACK_FERRETDB_PG_DSN"):
        if os.environ.get(name):
            settings[name] = os.environ[name]
    missing = {"FITTRACK_PG_DSN", "FITTRACK_KAFKA_BOOTSTRAP", "FITTRACK_MONGO_URI"} - settings.keys()
    if missing:
        raise RuntimeError(f"{NOT_RUNNING} ({', '.join(sorted(missing))} unknown)")
    return settings


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def run_services(command: str) -> None:
    subprocess.run([*SERVICES, command], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


@dataclass
class ProductionStack:
    """One isolated slice of the shared services: its own database, topics, persister and dispatcher groups."""

    name: str
    settings: dict[str, str]
    persisters: list[subprocess.Popen] = field(default_factory=list)
    dispatchers: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, purpose: str) -> ProductionStack:
        settings = service_settings()
        name = f"ft_{purpose}_{secrets.token_hex(4)}"
        try:
            _administer(settings["FITTRACK_PG_DSN"], f'CREATE DATABASE "{name}"')
        except psycopg2.OperationalError as error:
            raise RuntimeError(f"{NOT_RUNNING}: {error}") from error
        return cls(name, settings)

    @property
    def env(self) -> dict[str, str]:
        """The production profile's settings for this slice, as environment variables."""
        return {
            "FITTRACK_PROFILE": "production",
            "FITTRACK_PG_DSN": with_database(self.settings["FITTRACK_PG_DSN"], self.name),
            "FITTRACK_KAFKA_BOOTSTRAP": self.settings["FITTRACK_KAFKA_BOOTSTRAP"],
            "FITTRACK_MONGO_URI": self.settings["FITTRACK_MONGO_URI"],
            "FITTRACK_MONGO_DATABASE": self.name,
            # Where FerretDB keeps its tables, so the metric store indexes them (empty: a real MongoDB).
            "FITTRACK_FERRETDB_PG_DSN": self.settings.get("FITTRACK_FERRETDB_PG_DSN", ""),
            "FITTRACK_READINGS_TOPIC": f"{self.name}.readings",
            "FITTRACK_NOTIFICATIONS_TOPIC": f"{self.name}.notifications",
            "FITTRACK_READINGS_PARTITIONS": "4",
            "FITTRACK_NOTIFICATIONS_PARTITIONS": "2",
            "FITTRACK_PERSISTER_GROUP": f"{self.name}.persister",
            "FITTRACK_LIVE_NOTIFICATIONS_TOPIC": f"{self.name}.notifications-live",
            "FITTRACK_DEAD_LETTER_TOPIC": f"{self.name}.notifications-dead",
            "FITTRACK_DISPATCHER_GROUP": f"{self.name}.dispatcher",
            "FITTRACK_PUBLISH_TIMEOUT_SECONDS": "8",
        }

    def config_values(self) -> dict:
        """The same settings as Config keyword arguments."""
        values = {name.removeprefix("FITTRACK_").lower(): value for name, value in self.env.items()}
        for number in ("readings_partitions", "notifications_partitions"):
            values[number] = int(values[number])
        values["publish_timeout_seconds"] = float(values["publish_timeout_seconds"])
        return values

    def start_persister(self, stderr=None, **extra_env: str) -> subprocess.Popen:
        env = {**os.environ, **self.env, "FITTRACK_LOG_LEVEL": "WARNING", **extra_env}
        process = subprocess.Popen([sys.executable, "-m", "fittrack.app.persister"], cwd=ROOT, env=env, stderr=stderr)
        self.persisters.append(process)
        return process

    def stop_persisters(self) -> None:
        for process in self.persisters:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.persisters:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.persisters.clear()

    def start_dispatcher(self, **extra_env: str) -> subprocess.Popen:
        env = {**os.environ, **self.env, "FITTRACK_LOG_LEVEL": "WARNING", **extra_env}
        process = subprocess.Popen([sys.executable, "-m", "fittrack.app.dispatcher"], cwd=ROOT, env=env)
        self.dispatchers.append(process)
        return process

    def stop_dispatchers(self) -> None:
        for process in self.dispatchers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.dispatchers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.dispatchers.clear()

    def mongo(self) -> pymongo.database.Database:
        return pymongo.MongoClient(self.settings["FITTRACK_MONGO_URI"], serverSelectionTimeoutMS=5000)[self.name]

    def destroy(self) -> None:
        self.stop_persisters()
        self.stop_dispatchers()
        client = pymongo.MongoClient(self.settings["FITTRACK_MONGO_URI"], serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(self.name)
        except pymongo.errors.PyMongoError:
            pass  # the run's data stays behind in ./var; nothing depends on it
        finally:
            client.close()
        with contextlib.suppress(psycopg2.Error):
            _administer(self.settings["FITTRACK_PG_DSN"], f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        # Topics and the persister group too, or every run would leave them behind in the broker.
        with contextlib.suppress(KafkaError):
            admin = KafkaAdminClient(
                bootstrap_servers=self.settings["FITTRACK_KAFKA_BOOTSTRAP"], request_timeout_ms=10_000
            )
            try:
                mine = [topic for topic in admin.list_topics() if topic.startswith(f"{self.name}.")]
                if mine:
                    admin.delete_topics(mine)
                with contextlib.suppress(KafkaError):
                    admin.delete_groups([self.env["FITTRACK_PERSISTER_GROUP"]])
                with contextlib.suppress(KafkaError):
                    admin.delete_groups([self.env["FITTRACK_DISPATCHER_GROUP"]])
            finally:
                admin.close()


def _administer(dsn: str, statement: str) -> None:
    """Run a statement that cannot be inside a transaction (CREATE/DROP DATABASE)."""
    connection = psycopg2.connect(dsn, connect_timeout=5)
    try:
        connection.autocommit = True
        connection.cursor().execute(statement)
    finally:
        connection.close()
