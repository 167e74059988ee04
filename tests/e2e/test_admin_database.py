"""`fittrack-admin` pointed at a file that is not Fittrack's database refuses it and leaves it as it was.

Opening the server's stores migrates the SQLite file, so a mistaken FITTRACK_SQLITE_PATH (an empty file,
another application's database) would otherwise get Fittrack's tables added and be reported as holding
no dead letters. Each case runs the command as an operator does and compares the file's bytes, and the
files beside it, before and after.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from fittrack.core.adapters.sqlite import SqliteDatabase

ADMIN = Path(sys.executable).parent / "fittrack-admin"
COMMANDS = [("dead-letters", "list"), ("dead-letters", "list", "--json"), ("dead-letters", "replay", "--all")]


def admin(database: Path, *arguments: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FITTRACK_")}
    env["FITTRACK_SQLITE_PATH"] = str(database)
    return subprocess.run(
        [str(ADMIN), *arguments], cwd=database.parent, env=env, capture_output=True, text=True, timeout=60
    )


def another_apps_database(path: Path, journal_mode: str) -> Path:
    """A recipe box's SQLite file, with a schema version of its own, as an application leaves it."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.executescript(
            """
            CREATE TABLE recipes (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
            INSERT INTO recipes (title) VALUES ('pancakes'), ('ratatouille');
            PRAGMA user_version = 3;
            """
        )
    return path


def tables(path: Path) -> set[str]:
    uri = f"{path.as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def assert_refused_and_untouched(database: Path, arguments: tuple[str, ...], *mentions: str) -> None:
    before = database.read_bytes()
    beside = sorted(database.parent.iterdir())

    result = admin(database, *arguments)

    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, shown
    assert result.stdout == "", shown  # no "no dead letters", no "[]"
    assert "Traceback" not in result.stderr, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and f"error: {database} is not the server's SQLite file" in errors[0], shown
    assert "hint: fittrack-admin left it as it was; set FITTRACK_SQLITE_PATH" in result.stderr, shown
    assert "FITTRACK_DATA_DIR" in result.stderr, shown
    for fragment in mentions:
        assert fragment in result.stderr, shown
    assert database.read_bytes() == before
    assert sorted(database.parent.iterdir()) == beside  # no -wal, -shm or -journal left behind


@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
def test_fittrack_admin_refuses_an_empty_file_and_leaves_it_empty(tmp_path, arguments):
    database = tmp_path / "fittrack.sqlite3"
    database.touch()

    assert_refused_and_untouched(database, arguments, "it is empty")
    assert database.stat().st_size == 0


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
def test_fittrack_admin_refuses_another_applications_database_and_adds_no_table_to_it(
    tmp_path, arguments, journal_mode
):
    database = another_apps_database(tmp_path / "recipes.sqlite3", journal_mode)

    assert_refused_and_untouched(database, arguments, "without Fittrack's tables")
    assert tables(database) == {"recipes", "users"}


def test_fittrack_admin_refuses_a_file_that_is_not_sqlite_and_leaves_it_as_it_was(tmp_path):
    database = tmp_path / "notes.txt"
    database.write_text("not a database\n")

    assert_refused_and_untouched(database, ("dead-letters", "list"), "it is not an SQLite database")


def test_fittrack_admin_still_works_on_a_fittrack_database_of_an_earlier_schema_version(tmp_path):
    # The server migrates its file when it starts; an operator's command does the same, as before.
    database = tmp_path / "fittrack.sqlite3"
    old = SqliteDatabase(database)
    old.migrate(target=1)
    old.close()

    result = admin(database, "dead-letters", "list")

    assert (result.returncode, result.stdout, result.stderr) == (0, "no dead letters\n", "")
