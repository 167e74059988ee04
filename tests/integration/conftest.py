"""The production databases' fixtures (tests/databases.py): a PostgreSQL and a MongoDB database per module."""

from tests.databases import (  # noqa: F401 (fixtures, found by pytest by name)
    minutes_collection,
    mongo_client,
    mongo_collection,
    mongo_database,
    mongo_store,
    pg_admin_dsn,
    pg_database,
    pg_dsn,
    pg_empty,
    pg_fresh_dsn,
    pg_raw,
)
