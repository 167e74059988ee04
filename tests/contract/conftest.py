"""Each port's backends, as one parametrized fixture: a contract check taking `uow`, `store` or `bus` runs
once against every implementation of that port, so the fakes the unit tests trust cannot drift from the
real adapters, nor the embedded adapters from the production ones.

The production backends use the services `make services` runs (tests/databases.py) and fail without them.
"""

import pytest

from fittrack.core.adapters.postgres_accounts import PostgresUnitOfWork
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
from fittrack.core.adapters.sqlite_ingest import SqliteReadingBus
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
from tests.databases import (  # noqa: F401 (fixtures, found by pytest by name)
    mongo_client,
    mongo_collection,
    mongo_database,
    mongo_store,
    pg_admin_dsn,
    pg_database,
    pg_dsn,
    pg_empty,
)
from tests.unit.fakes import FakeAccountsDatabase, FakeMetricStore, FakeReadingBus

PRODUCTION = pytest.mark.production


@pytest.fixture
def sqlite_database(tmp_path):
    database = SqliteDatabase(tmp_path / "contract.sqlite3")
    database.migrate()
    yield database
    database.close()


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=PRODUCTION)])
def uow(request):
    """A unit-of-work factory over an empty account database."""
    if request.param == "fake":
        return FakeAccountsDatabase()
    if request.param == "sqlite":
        database = request.getfixturevalue("sqlite_database")
        return lambda: SqliteUnitOfWork(database)
    database = request.getfixturevalue("pg_empty")
    return lambda: PostgresUnitOfWork(database)


@pytest.fixture(params=["fake", "sqlite", pytest.param("mongo", marks=PRODUCTION)])
def store(request):
    """An empty metric store."""
    if request.param == "fake":
        return FakeMetricStore()
    if request.param == "sqlite":
        return SqliteMetricStore(request.getfixturevalue("sqlite_database"))
    return request.getfixturevalue("mongo_store")


@pytest.fixture(params=["fake", "sqlite"])
def bus(request):
    """An empty reading bus (production's is Kafka, whose promises tests/unit/test_kafka_reading_bus.py checks)."""
    if request.param == "fake":
        return FakeReadingBus()
    return SqliteReadingBus(request.getfixturevalue("sqlite_database"))
