"""Schema migrations for both account databases: numbered files applied in order, each once.

fittrack/core/adapters/migrations/<engine>/ holds one file per schema version:
`NNNN_name.sql`, a script, or `NNNN_name.py`, a data step for what SQL alone
cannot do, with a function `migrate(conn)` that gets the engine's connection
(sqlite3.Connection, or the PostgreSQL Transaction: both have `execute`).
Versions run 1, 2, 3... without gaps. To change a schema, add the next file;
never edit one that has shipped.

What differs per engine is the bookkeeping, a Ledger: SQLite counts the
applied versions in PRAGMA user_version and runs each in a transaction of its
own; PostgreSQL records them in schema_migrations and runs them all in one
transaction under an advisory lock.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

MIGRATIONS_ROOT = Path(__file__).parents[1] / "migrations"
_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.(sql|py)")


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def script(self) -> str | None:
        """The SQL of a script migration; None for a data step."""
        return self.path.read_text(encoding="utf-8") if self.path.suffix == ".sql" else None

    @property
    def step(self) -> Callable[[Any], None]:
        """The `migrate(conn)` function of a data step."""
        if self.path.suffix != ".py":
            raise TypeError(f"migration {self.name} is an SQL script, not a data step")
        spec = importlib.util.spec_from_file_location(f"_fittrack_migration_{self.path.stem}", self.path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.migrate


def migrations(engine: str) -> list[Migration]:
    """The migrations of one engine ("sqlite" or "postgres"), in version order."""
    found: dict[int, Path] = {}
    for path in sorted((MIGRATIONS_ROOT / engine).iterdir()):
        if path.name.startswith(("_", ".")) or path.suffix not in (".sql", ".py"):
            continue  # __pycache__ and the like
        match = _FILE.fullmatch(path.name)
        if match is None:
            raise RuntimeError(f"migration {path.name} is not named NNNN_description.sql or .py")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"migrations {found[version].name} and {path.name} share version {version}")
        found[version] = path
    if sorted(found) != list(range(1, len(found) + 1)):
        raise RuntimeError(f"the {engine} migrations skip a version: {sorted(found)}")
    return [Migration(version, path) for version, path in sorted(found.items())]


class Ledger(Protocol):
    """An engine's record of the applied versions, and how it applies one."""

    def session(self) -> AbstractContextManager[set[int]]:
        """The versions applied so far, for the span of one run of migrate()."""

    def apply(self, migration: Migration) -> None:
        """Run the migration and record its version, together or not at all."""


def migrate(ledger: Ledger, engine: str, target: int | None = None) -> int:
    """Apply the migrations not applied yet, up to version `target` (the latest by default); the schema version."""
    with ledger.session() as applied:
        for migration in _upto(migrations(engine), target):
            if migration.version not in applied:
                log.info("applying %s migration %s", engine, migration.name)
                ledger.apply(migration)
                applied.add(migration.version)
        return max(applied, default=0)


def _upto(found: list[Migration], target: int | None) -> Iterator[Migration]:
    return (migration for migration in found if target is None or migration.version <= target)
