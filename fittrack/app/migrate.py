"""`fittrack-migrate`: bring the configured profile's database to the schema this build expects.

Run before starting servers of a new version; running it again, or from two
machines at once, is harmless.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from fittrack.app.config import Config, ConfigError
from fittrack.app.process import command_line
from fittrack.core.domain.errors import Unavailable


def migrate(config: Config) -> int:
    """Migrate the database of `config`'s profile; returns its schema version."""
    if config.profile == "production":
        from fittrack.app.stores import metric_store
        from fittrack.core.adapters.postgres import PostgresDatabase

        database = PostgresDatabase(config.pg_dsn, pool_max=1)
        try:
            version = database.migrate()
        finally:
            database.close()
        # The metric store's documents too: month keys, minutes in their own collection
        # (fittrack/core/adapters/mongo_layout.py).
        # Run with the persisters stopped, as make up does.
        store = metric_store(config, "primary")
        try:
            if not store.migrated:
                logging.getLogger(__name__).info(
                    "brought %d day documents to the current layout", store.migrate_layout()
                )
        finally:
            store.close()
        return version
    from fittrack.core.adapters.sqlite import SqliteDatabase

    database = SqliteDatabase(config.database_path)
    try:
        return database.migrate()
    finally:
        database.close()


def main(argv: Sequence[str] | None = None) -> int:
    command_line("fittrack-migrate", "Bring the profile's databases to the current schema; safe to run again.", argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = Config.from_env()
        version = migrate(config)
    except ConfigError as error:
        print(f"fittrack-migrate: {error}", file=sys.stderr)
        return 2
    except Unavailable as error:
        print(f"fittrack-migrate: {error}", file=sys.stderr)
        return 1
    print(f"{config.profile} database at schema version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
