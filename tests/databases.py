"""Fixtures for the production databases: each test module gets a PostgreSQL database and a MongoDB database
of its own, created fresh and dropped at the end. The integration and contract tiers import them into their
conftest.py.

The servers are the ones `make services` runs (FITTRACK_PG_DSN and FITTRACK_MONGO_URI, else var/services.env).
Without them these tests fail rather than skip: a suite that quietly skips the production databases proves
nothing about them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from fittrack.core.adapters.mongo import MongoMetricStore
from fittrack.core.adapters.mongo_layout import COLLECTION, MINUTES_COLLECTION
from fittrack.core.adapters.postgres import PostgresDatabase
from tests.production import SERVICES_ENV, service_settings

NOT_RUNNING = "PostgreSQL is not running: run `make services`"
MONGO_NOT_RUNNING = "FerretDB is not running: run `make services`"
# Everything the migrations create but schema_migrations, which must survive a test.
ACCOUNT_TABLES = (
    "users, credentials, user_metric, sessions, refresh_tokens, goals, notifications, device_cursors, sso_used_nonces"
    ", login_failures, address_login_failures, evaluation_claims, batch_claims"
)


def _configured(variable: str) -> str | None:
    """The setting from the environment, else from the file `make services` writes."""
    try:
        return service_settings().get(variable)
    except RuntimeError:  # the file is missing or incomplete: say which service, below
        return os.environ.get(variable)


def with_database(dsn: str, dbname: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = dbname
    return psycopg2.extensions.make_dsn(**params)


@contextmanager
def scratch_database(admin_dsn: str, prefix: str = "fittrack_it") -> Iterator[str]:
    """A new, empty database; yields its DSN and drops it afterwards, whoever is still connected."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg2.connect(admin_dsn, connect_timeout=3)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield with_database(admin_dsn, name)
    finally:
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """The DSN of the running server's app database; fails the test when there is none."""
    dsn = _configured("FITTRACK_PG_DSN")
    if not dsn:
        pytest.fail(f"{NOT_RUNNING} (FITTRACK_PG_DSN is unset and {SERVICES_ENV} does not name it)", pytrace=False)
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        pytest.fail(f"{NOT_RUNNING} ({str(error).strip()})", pytrace=False)
    return dsn


@pytest.fixture(scope="module")
def pg_dsn(pg_admin_dsn) -> Iterator[str]:
    """This module's own database, empty (not migrated)."""
    with scratch_database(pg_admin_dsn) as dsn:
        yield dsn


@pytest.fixture
def pg_fresh_dsn(pg_admin_dsn) -> Iterator[str]:
    """A database of this test's own, for tests that must start from nothing."""
    with scratch_database(pg_admin_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def pg_database(pg_dsn) -> Iterator[PostgresDatabase]:
    """The adapter on this module's database, migrated."""
    database = PostgresDatabase(pg_dsn, pool_max=5)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def pg_empty(pg_database) -> PostgresDatabase:
    """The module's database with every account table emptied, so each test starts from the same state."""
    with pg_database.transaction() as tx:
        tx.execute(f"TRUNCATE {ACCOUNT_TABLES} RESTART IDENTITY CASCADE")
    return pg_database


@pytest.fixture
def pg_raw(pg_empty, pg_dsn) -> Iterator[psycopg2.extensions.connection]:
    """A plain psycopg2 connection to the emptied database, rolled back afterwards: for raw SQL."""
    conn = psycopg2.connect(pg_dsn, connect_timeout=3)
    yield conn
    conn.rollback()
    conn.close()


def mongo_uri() -> str:
    uri = _configured("FITTRACK_MONGO_URI")
    if not uri:
        pytest.fail(f"{MONGO_NOT_RUNNING} (FITTRACK_MONGO_URI is unset and {SERVICES_ENV} has none)", pytrace=False)
    return uri


@pytest.fixture(scope="module")
def mongo_client():
    client = MongoClient(mongo_uri(), serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
        problem = None
    except PyMongoError as error:
        client.close()
        problem = str(error).split(" (configured timeouts")[0]
    if problem:
        pytest.fail(f"{MONGO_NOT_RUNNING} ({problem})", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def mongo_database(mongo_client):
    """This module's own database, dropped at the end."""
    name = f"fittrack_mongotest_{secrets.token_hex(4)}"
    yield name
    mongo_client.drop_database(name)


@pytest.fixture
def mongo_collection(mongo_client, mongo_database):
    """The metric store's collections emptied, so each test starts from the same state; the figures one."""
    mongo_client[mongo_database].drop_collection(COLLECTION)
    mongo_client[mongo_database].drop_collection(MINUTES_COLLECTION)
    return mongo_client[mongo_database][COLLECTION]


@pytest.fixture
def minutes_collection(mongo_client, mongo_database, mongo_collection):
    return mongo_client[mongo_database][MINUTES_COLLECTION]


@pytest.fixture
def mongo_store(mongo_client, mongo_database, mongo_collection):
    store = MongoMetricStore(mongo_client, mongo_database)
    store.ensure_indexes()
    return store
