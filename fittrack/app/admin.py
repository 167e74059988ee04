"""`fittrack-admin`: operator commands against the configured profile's stores (same environment as the server).

    fittrack-admin dead-letters list [--json] [--limit N]
    fittrack-admin dead-letters replay (--all | NOTIFICATION_ID ...)

A dead letter is a notification whose push failed on every attempt, or was
refused for good (a 4xx other than 408 and 429). Replaying makes its push
pending again, due now, with its attempts reset: the running dispatcher
delivers it, with the same Idempotency-Key as before.

It works on the server's own data, so it never creates any: in the embedded
profile a SQLite file that is not there is an error that says where it looked,
and a file that is not Fittrack's (empty, not SQLite, or another application's
database) is refused before anything is written to it.
Failures are one `error:` line on stderr, often with a `hint:` line, and exit
status 1 (2 for a usage or configuration mistake).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fittrack.app.config import Config, ConfigError
from fittrack.core.domain.delivery import DeadLetter, DeliveryState
from fittrack.core.domain.errors import Unavailable

if TYPE_CHECKING:
    from fittrack.core.services.dispatch import DeadLetters

EXIT_FAILED = 1
EXIT_USAGE = 2
# Where each setting is given, for hints that say what to change.
DATABASE_VARIABLES = "FITTRACK_SQLITE_PATH to the server's SQLite file, or FITTRACK_DATA_DIR to its data directory"
SERVICES_HINT = (
    "run fittrack-admin with the server's environment (`make services` writes it to var/services.env); "
    "`make services-status` shows whether the services are up"
)
SQLITE_HEADER = b"SQLite format 3\x00"
# Tables of Fittrack's first schema version that every later one keeps (fittrack/core/adapters/migrations/sqlite/;
# the file's `PRAGMA user_version` counts the versions applied). Opening the server's stores migrates the file, so a
# file without them must be refused first: migrating another application's database would add Fittrack's tables.
FITTRACK_TABLES = frozenset({"users", "credentials", "sessions", "goals", "notifications", "device_cursors"})


class AdminError(Exception):
    """A failure explained to the operator; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


class CommandParser(argparse.ArgumentParser):
    """Usage errors as an `error:` line and a `hint:` line, like the other failures (subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\nhint: `{self.prog} --help` describes the options\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; give 1 or more")
    return value


def parser() -> argparse.ArgumentParser:
    top = CommandParser(prog="fittrack-admin", description="Fittrack operator commands.")
    commands = top.add_subparsers(dest="command", required=True)
    letters = commands.add_parser("dead-letters", help="notifications whose push failed for good")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list dead letters, most recent first")
    listing.add_argument("--json", action="store_true", help="print a JSON array of objects ([] when there are none)")
    listing.add_argument("--limit", type=positive_int, default=1000, help="at most this many (default 1000)")
    replay = actions.add_parser("replay", help="push dead letters again")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every dead letter")
    which.add_argument("ids", nargs="*", default=[], metavar="NOTIFICATION_ID", help="the dead letters to replay")
    return top


def describe(letter: DeadLetter) -> dict:
    notification = letter.notification
    return {
        "notification_id": notification.notification_id,
        "user_id": notification.user_id,
        "kind": notification.kind.name,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "failed_at": letter.failed_at.isoformat(),
        # "dead" until replayed; then "pending" or "delivered".
        "state": letter.state.value,
        "title": notification.title,
    }


def print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    rows = [("NOTIFICATION", "USER", "KIND", "ATTEMPTS", "FAILED AT", "STATE", "LAST ERROR")]
    for letter in letters:
        state = letter.state.value if letter.state is DeliveryState.DEAD else f"replayed ({letter.state.value})"
        rows.append(
            (
                letter.notification.notification_id,
                letter.notification.user_id,
                letter.notification.kind.name,
                str(letter.attempts),
                letter.failed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                state,
                letter.last_error,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False)) + "  " + row[-1])


def check_database(config: Config) -> None:
    """Refuse what would make `fittrack-admin` work on data other than the server's, or create data."""
    if config.profile == "embedded":
        path = config.database_path.absolute()
        if path.is_dir():
            raise AdminError(f"{path} is a directory, not the server's SQLite file", f"set {DATABASE_VARIABLES}")
        if not path.exists():
            raise AdminError(
                f"no Fittrack database at {path}",
                "run fittrack-admin in the directory the server runs in (the checkout, for `make run`), "
                f"or set {DATABASE_VARIABLES}",
            )
        check_fittrack_schema(path)
        return
    import psycopg2.extensions

    for variable, dsn in (("FITTRACK_PG_DSN", config.pg_dsn), ("FITTRACK_PG_REPLICA_DSN", config.pg_replica_dsn)):
        try:
            psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.ProgrammingError:
            # The parser's message would quote the DSN, password included.
            raise AdminError(
                f"{variable} is not a PostgreSQL connection string",
                "use a URL such as postgresql://fittrack@127.0.0.1:55432/fittrack",
                EXIT_USAGE,
            ) from None


def check_fittrack_schema(path: Path) -> None:
    """Refuse a file that is not a Fittrack database, only reading it: its header, schema version and tables."""
    hint = f"fittrack-admin left it as it was; set {DATABASE_VARIABLES}"
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise AdminError(f"cannot read {path}: {error.strerror}", hint) from None
    if not header:
        raise AdminError(f"{path} is not the server's SQLite file: it is empty", hint)
    if header != SQLITE_HEADER:
        raise AdminError(f"{path} is not the server's SQLite file: it is not an SQLite database", hint)
    try:
        # Not mode=ro: a read-only connection to a WAL file leaves -wal and -shm files beside it. query_only
        # refuses writes all the same, and closing the last connection removes what opening it made.
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
            conn.execute("PRAGMA query_only = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as error:
        raise AdminError(f"cannot use {path} as the Fittrack database: {error}", hint) from None
    if not version or not FITTRACK_TABLES.issubset(tables):
        raise AdminError(
            f"{path} is not the server's SQLite file: it is an SQLite database without Fittrack's tables "
            "(another application's?)",
            hint,
        )


def explain_unavailable(error: Unavailable, config: Config) -> AdminError:
    """What could not be reached, and why, from the adapter's error and its cause."""
    cause = str(error.__cause__ or "").strip().splitlines()
    because = f": {cause[0]}" if cause else ""
    if config.profile == "production":
        from fittrack.core.adapters.postgres import UNAVAILABLE, describe_dsn

        if str(error) == UNAVAILABLE:
            return AdminError(f"cannot reach PostgreSQL at {describe_dsn(config.pg_dsn)}{because}", SERVICES_HINT)
        return AdminError(f"{error} (FITTRACK_KAFKA_BOOTSTRAP={config.kafka_bootstrap}){because}", SERVICES_HINT)
    return AdminError(f"{error}{because}", "the server may hold the database locked; try again")


def run(arguments: argparse.Namespace) -> int:
    from fittrack.app.worker_parts import build_dead_letters

    try:
        config = Config.from_env()
    except ConfigError as error:
        raise AdminError(str(error), exit_code=EXIT_USAGE) from None
    check_database(config)
    try:
        with contextlib.ExitStack() as cleanup:
            dead_letters, close = build_dead_letters(config)
            cleanup.callback(close)
            return dead_letters_command(dead_letters, arguments)
    except Unavailable as error:
        raise explain_unavailable(error, config) from None
    except sqlite3.Error as error:
        raise AdminError(
            f"cannot use {config.database_path.absolute()} as the Fittrack database: {error}",
            f"set {DATABASE_VARIABLES}",
        ) from None


def dead_letters_command(dead_letters: DeadLetters, arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        letters = dead_letters.list(arguments.limit)
        if arguments.json:
            print(json.dumps([describe(letter) for letter in letters], indent=2))
        else:
            print_table(letters)
        return 0
    replayed = dead_letters.replay(None if arguments.all else arguments.ids)
    if replayed or arguments.all:
        print(f"replayed {len(replayed)} dead letter{'s' if len(replayed) != 1 else ''}")
    for notification_id in replayed:
        print(notification_id)
    unknown = [notification_id for notification_id in dict.fromkeys(arguments.ids) if notification_id not in replayed]
    if unknown:
        raise AdminError(
            f"not dead letters (unknown, or replayed already): {' '.join(unknown)}",
            "`fittrack-admin dead-letters list` shows the dead letters, with their ids and states",
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    # A connection that fails is reported once, as this command's error, with its cause.
    for adapter in ("postgres", "postgres_pool"):
        logging.getLogger(f"fittrack.core.adapters.{adapter}").setLevel(logging.ERROR)
    try:
        return run(arguments)
    except AdminError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
