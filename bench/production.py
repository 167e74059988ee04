"""The production profile for a benchmark run: `make up`'s processes on a slice of the running services.

The slice (its own PostgreSQL database, MongoDB database, Kafka topics and
persister group) is tests/production.py's ProductionStack, so a benchmark never
sees the test suite's data nor another run's; it is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions
from pymongo.uri_parser import parse_uri

from bench.common import ROOT, Process, reachable, report_failure, spawn, start_server, work_directory
from tests.production import ProductionStack, service_settings

SKIPPED = "services not running: run make services"


def endpoints(settings: dict[str, str]) -> list[tuple[str, str, int]]:
    """(service, host, port) of PostgreSQL, Kafka and MongoDB as the settings name them."""
    dsn = psycopg2.extensions.parse_dsn(settings["FITTRACK_PG_DSN"])
    kafka_host, _, kafka_port = settings["FITTRACK_KAFKA_BOOTSTRAP"].split(",")[0].strip().rpartition(":")
    mongo_host, mongo_port = parse_uri(settings["FITTRACK_MONGO_URI"])["nodelist"][0]
    return [
        ("postgresql", dsn.get("host", "127.0.0.1"), int(dsn.get("port", 5432))),
        ("kafka", kafka_host, int(kafka_port)),
        ("mongodb", mongo_host, int(mongo_port)),
    ]


def unavailable() -> str | None:
    """Why the production services cannot be used, or None when all three accept connections."""
    try:
        settings = service_settings()
    except RuntimeError:
        return f"{SKIPPED} (var/services.env not found)"
    for service, host, port in endpoints(settings):
        if not reachable(host, port):
            return f"{SKIPPED} ({service} at {host}:{port} does not accept connections)"
    return None


@dataclass
class ProductionRun:
    server: Process
    persisters: list[Process]
    env: dict[str, str]  # the slice's settings (tests/production.py ProductionStack.env)


@contextlib.asynccontextmanager
async def production_stack(
    log_dir: Path,
    persisters: int = 2,
    server_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
) -> AsyncIterator[ProductionRun]:
    """Migrations, `persisters` persister processes and the server, as `make up` starts them, then clean-up.

    server_env and worker_env: settings added to the server's and to each persister's (telemetry, say)."""
    stack = ProductionStack.create("bench")
    env = {**os.environ, **stack.env, "FITTRACK_LOG_LEVEL": "WARNING", "FITTRACK_DATA_DIR": str(log_dir / "data")}
    env_of_workers = {**env, **(worker_env or {})}
    server = None
    workers: list[Process] = []
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "fittrack.app.migrate"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{migrated.stdout}{migrated.stderr}")
        for number in range(1, persisters + 1):
            worker = spawn(f"persister-{number}", ["-m", "fittrack.app.persister"], env_of_workers, log_dir)
            stack.persisters.append(worker.popen)  # the stack stops them before it drops its databases
            workers.append(worker)
        server = await start_server({**stack.env, **(server_env or {})}, log_dir)
        yield ProductionRun(server, workers, stack.env)
    finally:
        if server is not None:
            server.stop()
        stack.destroy()


async def run_measured(bench: str, run, options) -> tuple[dict, int]:
    """A production benchmark's one JSON line and exit code: skipped without the services, its figures, or
    an error (with the processes' last log lines on stderr)."""
    if reason := unavailable():
        return {"bench": bench, "profile": "production", "skipped": reason}, 0
    with work_directory(f"bench-{bench}", options.log_dir) as log_dir:
        try:
            return await run(options, log_dir), 0
        except Exception as error:  # noqa: BLE001 - one JSON line even when it fails; details on stderr
            report_failure(log_dir)
            return {"bench": bench, "profile": "production", "error": f"{type(error).__name__}: {error}"}, 1
