"""The one migrator of both account databases, on SQLite: numbered scripts and data steps, each applied once."""

from __future__ import annotations

import re

import pytest

from fittrack.core.adapters.sql import migrator
from fittrack.core.adapters.sql.dialect import POSTGRES, SQLITE
from fittrack.core.adapters.sqlite import MIGRATIONS, SqliteDatabase


def schema(db: SqliteDatabase) -> list[tuple]:
    rows = db.connection().execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
    return [(kind, name, re.sub(r"\s+", " ", sql or "")) for kind, name, sql in rows]


def test_a_database_migrated_a_version_at_a_time_ends_with_the_schema_of_one_migrated_at_once(tmp_path):
    at_once, stepwise = SqliteDatabase(tmp_path / "once.sqlite3"), SqliteDatabase(tmp_path / "steps.sqlite3")
    assert at_once.migrate() == len(MIGRATIONS)
    for version in range(1, len(MIGRATIONS) + 1):
        assert stepwise.migrate(version) == version
    assert schema(stepwise) == schema(at_once)
    assert stepwise.migrate() == len(MIGRATIONS)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """SQLite's migrations made of files under tmp_path: (their folder, a database to migrate)."""
    folder = tmp_path / "migrations" / "sqlite"
    folder.mkdir(parents=True)
    monkeypatch.setattr(migrator, "MIGRATIONS_ROOT", tmp_path / "migrations")
    return folder, SqliteDatabase(tmp_path / "test.sqlite3")


def test_a_data_step_runs_once_between_the_scripts_around_it(engine):
    folder, db = engine
    (folder / "0001_counts.sql").write_text("CREATE TABLE counts (n INTEGER);\n-- a comment last\n")
    (folder / "0002_first_count.py").write_text(
        "def migrate(conn):\n    conn.execute('INSERT INTO counts VALUES ((SELECT count(*) FROM counts) + 1)')\n"
    )
    (folder / "0003_index.sql").write_text("CREATE INDEX counts_by_n ON counts (n);")
    assert db.migrate() == 3
    assert db.migrate() == 3
    assert db.connection().execute("SELECT n FROM counts").fetchall() == [(1,)]
    assert db.connection().execute("PRAGMA user_version").fetchone() == (3,)


def test_a_failing_data_step_leaves_the_database_at_the_version_before_it(engine):
    folder, db = engine
    (folder / "0001_counts.sql").write_text("CREATE TABLE counts (n INTEGER);")
    (folder / "0002_broken.py").write_text(
        "def migrate(conn):\n    conn.execute('INSERT INTO counts VALUES (1)')\n    raise ValueError('bad data')\n"
    )
    with pytest.raises(ValueError, match="bad data"):
        db.migrate()
    assert db.connection().execute("PRAGMA user_version").fetchone() == (1,)
    assert db.connection().execute("SELECT count(*) FROM counts").fetchone() == (0,)


@pytest.mark.parametrize(
    ("names", "complaint"),
    [
        (["0001_a.sql", "0003_c.sql"], "skip a version"),
        (["0001_a.sql", "0001_b.py"], "share version 1"),
        (["0001_a.sql", "2_b.sql"], "not named NNNN_description"),
    ],
)
def test_the_migrator_refuses_migrations_it_could_apply_out_of_order(engine, names, complaint):
    folder, _ = engine
    for name in names:
        (folder / name).write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match=complaint):
        migrator.migrations("sqlite")


def test_a_query_is_written_once_with_psycopg2_placeholders_and_sqlite_gets_question_marks():
    query = "SELECT * FROM users WHERE user_id = %s AND display_name LIKE '100%%' AND time_zone IN (%s, %s)"
    assert (
        SQLITE.query(query)
        == "SELECT * FROM users WHERE user_id = ? AND display_name LIKE '100%' AND time_zone IN (?, ?)"
    )
    assert POSTGRES.query(query) == query
