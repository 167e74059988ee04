"""Every console script, run as a user runs it, through their mistakes and a server that is not there.

Each refusal is one `error:` line (the server's: `fittrack-server:`), often with `hint:` lines, that says
what to fix; the exit status is 1 (refused, unreachable) or 2 (usage or configuration); stderr never holds
a Python traceback or gRPC's own log lines; and nothing is left behind in the working directory.

The cases are tables, one per command: add a row to cover another mistake. A case's command, environment
and expected text may use these placeholders, made when a case first needs them:

    {down}      HOST:PORT where nothing listens
    {server}    HOST:PORT of a plaintext embedded server
    {database}  an embedded profile's SQLite file, with no dead letters
    {junk}      a file that is not a SQLite database
    {data}      an empty data directory for a server (FITTRACK_DATA_DIR)
    {cwd}       the empty working directory every case runs in (not a server's checkout)
    {session}   HOST:PORT where nothing listens, with a `fittrack` session stored for it
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fittrack.app.config import Config
from fittrack.core.adapters.sqlite import SqliteDatabase
from tests.support import Clock, RunningServer, server_settings

BIN = Path(sys.executable).parent
EXIT_FAILED, EXIT_USAGE = 1, 2
# What gRPC's C core prints on its own, e.g. "I1202 06:03:19.428610   23041 ssl_transport_security.cc:2563] ...".
GRPC_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    says: str  # what the command does, as a sentence: the test's id
    command: tuple[str, ...]  # a console script in the virtualenv's bin (or "python"), then its arguments
    exit_code: int
    mentions: tuple[str, ...] = ()  # what the output must say (stderr, or stdout for a success): what to fix
    env: Mapping[str, str] = field(default_factory=dict)
    stdout: str = ""  # the whole of stdout
    error_prefix: str = "error: "  # how the command's one error line starts
    timeout: float = 60


def case(says: str, *command: str, exit_code: int, mentions: tuple[str, ...] = (), **options) -> Case:
    return Case(says, command, exit_code, mentions, **options)


# --- fittrack-admin ---

PRODUCTION_DOWN = {
    "FITTRACK_PROFILE": "production",
    "FITTRACK_PG_DSN": "postgresql://fittrack@{down}/fittrack",
    "FITTRACK_KAFKA_BOOTSTRAP": "{down}",
    "FITTRACK_MONGO_URI": "mongodb://{down}",
}
EMPTY_DATABASE = {"FITTRACK_SQLITE_PATH": "{database}"}

ADMIN_CASES = [
    case(
        "fittrack-admin outside the server's checkout creates no database and says where it looked",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=EXIT_FAILED,
        mentions=("no Fittrack database at {cwd}/var/fittrack.sqlite3", "FITTRACK_SQLITE_PATH", "FITTRACK_DATA_DIR"),
    ),
    case(
        "fittrack-admin replays nothing outside the server's checkout and says where it looked",
        *("fittrack-admin", "dead-letters", "replay", "--all"),
        exit_code=EXIT_FAILED,
        mentions=("no Fittrack database at {cwd}/var/fittrack.sqlite3",),
    ),
    case(
        "fittrack-admin lists no dead letters as an empty JSON array",
        *("fittrack-admin", "dead-letters", "list", "--json"),
        exit_code=0,
        env=EMPTY_DATABASE,
        stdout="[]\n",
    ),
    case(
        "fittrack-admin lists no dead letters in words",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=0,
        env=EMPTY_DATABASE,
        stdout="no dead letters\n",
    ),
    case(
        "fittrack-admin refuses to replay an unknown id and says how to find the dead letters",
        *("fittrack-admin", "dead-letters", "replay", "no-such-id"),
        exit_code=EXIT_FAILED,
        env=EMPTY_DATABASE,
        mentions=("not dead letters", "no-such-id", "fittrack-admin dead-letters list"),
    ),
    case(
        "fittrack-admin refuses a limit of 0",
        *("fittrack-admin", "dead-letters", "list", "--limit", "0"),
        exit_code=EXIT_USAGE,
        mentions=("--limit", "give 1 or more"),
    ),
    case(
        "fittrack-admin refuses a limit that is not a number",
        *("fittrack-admin", "dead-letters", "list", "--limit", "ten"),
        exit_code=EXIT_USAGE,
        mentions=("--limit", "'ten' is not a whole number"),
    ),
    case(
        "fittrack-admin without a command says how to find the commands",
        "fittrack-admin",
        exit_code=EXIT_USAGE,
        mentions=("fittrack-admin --help",),
    ),
    case(
        "fittrack-admin replay without ids asks for ids or --all",
        *("fittrack-admin", "dead-letters", "replay"),
        exit_code=EXIT_USAGE,
        mentions=("--all", "NOTIFICATION_ID"),
    ),
    case(
        "fittrack-admin says that a file that is not SQLite is not the server's database",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=EXIT_FAILED,
        env={"FITTRACK_SQLITE_PATH": "{junk}"},
        mentions=("{junk} is not the server's SQLite file", "not an SQLite database", "FITTRACK_SQLITE_PATH"),
    ),
    case(
        "fittrack-admin refuses an unknown profile",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=EXIT_USAGE,
        env={"FITTRACK_PROFILE": "staging"},
        mentions=("FITTRACK_PROFILE must be one of embedded, production",),
    ),
    case(
        "fittrack-admin names the PostgreSQL it cannot reach and how to check the services",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=EXIT_FAILED,
        env=PRODUCTION_DOWN,
        mentions=("cannot reach PostgreSQL at fittrack@{down}/fittrack", "Connection refused", "make services-status"),
    ),
    case(
        "fittrack-admin cannot replay without PostgreSQL and says so",
        *("fittrack-admin", "dead-letters", "replay", "--all"),
        exit_code=EXIT_FAILED,
        env=PRODUCTION_DOWN,
        mentions=("cannot reach PostgreSQL",),
    ),
    case(
        "fittrack-admin refuses a malformed PostgreSQL DSN without repeating it",
        *("fittrack-admin", "dead-letters", "list"),
        exit_code=EXIT_USAGE,
        env={**PRODUCTION_DOWN, "FITTRACK_PG_DSN": "password=hunter2 nonsense"},
        mentions=("FITTRACK_PG_DSN is not a PostgreSQL connection string",),
    ),
]


# --- fittrack-simulator and fittrack-loadgen ---


def usage(script: str, says: str, *arguments: str, mentions: tuple[str, ...], **options) -> Case:
    """A mistake in the options, refused before any connection: the server given is not there, so a command
    that tried to connect would fail with 1, not 2."""
    return case(f"{script} {says}", script, "--server", "{down}", *arguments, exit_code=EXIT_USAGE, mentions=mentions)


SIMULATOR_USAGE = [
    ("refuses a day before 2000 before sending anything", ["--date", "1900-01-01"], ("1900-01-01", "2000-01-01")),
    ("refuses days that reach back before 2000", ["--date", "2000-01-03", "--days", "5"], ("1999-12-30",)),
    ("refuses a day in the future", ["--date", "2999-01-01"], ("2999-01-01 is in the future",)),
    ("refuses a day not written YYYY-MM-DD", ["--date", "24/11/2026"], ("--date", "YYYY-MM-DD")),
    ("refuses 0 devices", ["--devices", "0"], ("--devices", "give 1 or more")),
    ("refuses a negative number of devices", ["--devices", "-1"], ("--devices", "give 1 or more")),
    ("refuses 0 devices per user", ["--devices-per-user", "0"], ("--devices-per-user", "give 1 or more")),
    ("refuses 0 days", ["--days", "0"], ("--days", "give 1 to 31")),
    ("refuses more days than one view checks", ["--days", "32"], ("--days", "give 1 to 31")),
    ("refuses hours that end before they start", ["--hours", "9-7"], ("--hours", "FROM before TO")),
    ("refuses hours not written FROM-TO", ["--hours", "25"], ("--hours", "FROM-TO")),
    ("refuses an unknown time zone", ["--time-zone", "Mars/Olympus"], ("Mars/Olympus", "IANA")),
    ("refuses a seed that is not a whole number", ["--seed", "abc"], ("--seed", "whole number")),
    ("refuses batches of 0 readings", ["--batch-size", "0"], ("--batch-size", "give 1 to 1000")),
    ("refuses batches larger than the server takes", ["--batch-size", "1001"], ("--batch-size", "give 1 to 1000")),
    ("refuses a window of 0 batches", ["--window", "0"], ("--window", "give 1 or more")),
    ("refuses a disconnect rate of 1", ["--disconnect-rate", "1"], ("--disconnect-rate", "up to, not including, 1")),
    ("refuses a negative disconnect rate", ["--disconnect-rate", "-0.1"], ("--disconnect-rate",)),
    ("refuses a backoff of 0 seconds", ["--max-backoff", "0"], ("--max-backoff", "seconds above 0")),
    ("refuses an endless backoff", ["--max-backoff", "inf"], ("--max-backoff", "seconds above 0")),
    ("refuses an ack timeout that is not a number", ["--ack-timeout", "nan"], ("--ack-timeout", "seconds above 0")),
    ("refuses giving up after fewer than 0 failures", ["--give-up-after", "-1"], ("--give-up-after", "0 or more")),
    ("refuses a negative verify timeout", ["--verify-timeout", "-5"], ("--verify-timeout", "0 or more")),
    ("refuses an option it does not have", ["--speed", "3"], ("--speed", "fittrack-simulator --help")),
]
LOADGEN_USAGE = [
    ("refuses 0 devices", ["--devices", "0"], ("--devices", "give 1 or more")),
    ("refuses a negative number of devices", ["--devices", "-3"], ("--devices", "give 1 or more")),
    ("refuses 0 devices per user", ["--devices-per-user", "0"], ("--devices-per-user", "give 1 or more")),
    ("refuses a negative rate", ["--rate", "-1"], ("--rate", "0 or more")),
    ("refuses a rate that is not a number", ["--rate", "nan"], ("--rate", "0 or more")),
    ("refuses a rate written in words", ["--rate", "fast"], ("--rate", "'fast' is not a number")),
    ("refuses batches of 0 readings", ["--batch", "0"], ("--batch", "give 1 to 1000")),
    ("refuses batches larger than the server takes", ["--batch", "1001"], ("--batch", "give 1 to 1000")),
    ("refuses a duration of 0", ["--duration", "0"], ("--duration", "seconds above 0")),
    ("refuses an endless duration", ["--duration", "inf"], ("--duration", "seconds above 0")),
    ("refuses 0 readings", ["--readings", "0"], ("--readings", "give 1 or more")),
    ("refuses both a total and a duration", ["--readings", "10", "--duration", "1"], ("not allowed with",)),
    ("refuses a window of 0 batches", ["--window", "0"], ("--window", "give 1 or more")),
    ("refuses 0 logins at a time", ["--logins", "0"], ("--logins", "give 1 or more")),
    ("refuses a disconnect rate of 1", ["--disconnect-rate", "1"], ("--disconnect-rate", "up to, not including, 1")),
    ("refuses a seed that is not a whole number", ["--seed", "1.5"], ("--seed", "whole number")),
]


def server_cases(script: str) -> list[Case]:
    """The server options and the server-down paths the simulator and the load generator share."""
    return [
        case(
            f"{script} refuses a port above 65535 rather than reach another port",
            *(script, "--server", "127.0.0.1:99999"),
            exit_code=EXIT_USAGE,
            mentions=("127.0.0.1:99999", "1 to 65535"),
        ),
        case(
            f"{script} refuses a server address without a port",
            *(script, "--server", "nonsense"),
            exit_code=EXIT_USAGE,
            mentions=("'nonsense'", "HOST:PORT"),
        ),
        case(
            f"{script} says a bad address came from FITTRACK_SERVER",
            script,
            exit_code=EXIT_USAGE,
            env={"FITTRACK_SERVER": "nonsense"},
            mentions=("$FITTRACK_SERVER", "HOST:PORT"),
        ),
        case(
            f"{script} refuses a CA file it cannot read",
            *(script, "--server", "{down}", "--ca-file", "{cwd}/no-such-ca.pem"),
            exit_code=EXIT_USAGE,
            mentions=("--ca-file", "cannot read {cwd}/no-such-ca.pem"),
        ),
        case(
            f"{script} refuses a client certificate without its key",
            *(script, "--server", "{down}", "--cert-file", "{junk}"),
            exit_code=EXIT_USAGE,
            mentions=("--cert-file and --key-file",),
        ),
        case(
            f"{script} says no server answers and how to start one",
            *(script, "--server", "{down}"),
            exit_code=EXIT_FAILED,
            mentions=("no Fittrack server answers at {down}", "make run"),
        ),
        case(
            f"{script} says a plaintext server does not speak TLS to grpcs://",
            *(script, "--server", "grpcs://{server}"),
            exit_code=EXIT_FAILED,
            mentions=("does not speak TLS", "drop grpcs://"),
        ),
        case(
            f"{script} says a plaintext server does not speak TLS to --tls",
            *(script, "--server", "{server}", "--tls"),
            exit_code=EXIT_FAILED,
            mentions=("does not speak TLS",),
        ),
    ]


SIMULATOR_CASES = [
    *(
        usage("fittrack-simulator", says, *arguments, mentions=mentions)
        for says, arguments, mentions in SIMULATOR_USAGE
    ),
    *server_cases("fittrack-simulator"),
]
LOADGEN_CASES = [
    *(usage("fittrack-loadgen", says, *arguments, mentions=mentions) for says, arguments, mentions in LOADGEN_USAGE),
    *server_cases("fittrack-loadgen"),
]


# --- the server ---


def server(says: str, mentions: tuple[str, ...], **env: str) -> Case:
    """`python -m fittrack.app.server` with a bad setting: it must refuse to start."""
    return case(
        f"the server {says}",
        *("python", "-m", "fittrack.app.server"),
        exit_code=EXIT_USAGE,
        mentions=mentions,
        env={"FITTRACK_LISTEN": "127.0.0.1:0", "FITTRACK_DATA_DIR": "{data}", **env},
        error_prefix="fittrack-server: ",
        timeout=30,
    )


SERVER_CASES = [
    server("refuses a setting that is not a number", ("FITTRACK_BCRYPT_ROUNDS",), FITTRACK_BCRYPT_ROUNDS="many"),
    server("refuses an unknown profile", ("FITTRACK_PROFILE",), FITTRACK_PROFILE="staging"),
    server(
        "refuses a TLS certificate without its key",
        ("FITTRACK_TLS_CERT_FILE", "FITTRACK_TLS_KEY_FILE"),
        FITTRACK_TLS_CERT_FILE="{junk}",
    ),
    server("refuses an unknown log level", ("FITTRACK_LOG_LEVEL",), FITTRACK_LOG_LEVEL="verbose"),
    server("refuses a listen address that is not HOST:PORT", ("FITTRACK_LISTEN",), FITTRACK_LISTEN="nonsense"),
    server("refuses a port above 65535", ("FITTRACK_LISTEN", "99999"), FITTRACK_LISTEN="127.0.0.1:99999"),
    server(
        "refuses a readiness address that is not HOST:PORT",
        ("FITTRACK_READY_LISTEN",),
        FITTRACK_READY_LISTEN="nonsense",
    ),
]

# --- fittrack ---


def cli(says: str, *arguments: str, exit_code: int, mentions: tuple[str, ...] = (), **options) -> Case:
    return case(f"fittrack {says}", "fittrack", *arguments, exit_code=exit_code, mentions=mentions, **options)


NOT_THERE = ("--server", "{down}")
LOGGED_IN_TO_A_DOWN_SERVER = ("--server", "{session}")
NOVEMBER = ("--from", "2026-11-01", "--to", "2026-11-30")

FITTRACK_CASES = [
    cli("without a command lists what it needs", exit_code=EXIT_USAGE, mentions=("COMMAND", "fittrack --help")),
    cli("refuses a command it does not have", "fly", exit_code=EXIT_USAGE, mentions=("'fly'", "fittrack --help")),
    cli(
        "points a misspelt option to the help of the command it was given to",
        *NOT_THERE, *("goals", "list", "--jsn"),
        exit_code=EXIT_USAGE,
        mentions=("unrecognized arguments: --jsn", "fittrack goals list --help"),
    ),
    cli(
        "refuses a timeout of 0",
        *("--timeout", "0", "goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("--timeout", "0 must be a number above 0"),
    ),
    cli(
        "refuses a port above 65535 rather than reach another port",
        *("--server", "127.0.0.1:99999", "goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("--server: '127.0.0.1:99999' has no valid port", "1 to 65535"),
    ),
    cli(
        "refuses a timeout longer than a day",
        *("--timeout", "1e300", "goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("--timeout", "too large; give at most 86,400"),
    ),
    cli(
        "refuses a server address with a scheme it does not speak",
        *("--server", "ftp://host:21", "goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("a scheme Fittrack does not speak (ftp)", "grpcs://HOST:PORT"),
    ),
    cli(
        "asks for brackets around an IPv6 address",
        *("--server", "::1:50051", "goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("[::1]:50051",),
    ),
    cli(
        "refuses a batch number too large for the wire",
        *NOT_THERE, *("readings", "push", "x.csv", "--sequence-start", "99999999999999999999999"),
        exit_code=EXIT_USAGE,
        mentions=("--sequence-start", "too large"),
    ),
    cli(
        "refuses an age no one has",
        *NOT_THERE, *("profile", "update", "--age", "99999999999"),
        exit_code=EXIT_USAGE,
        mentions=("--age", "give at most 150"),
    ),
    cli(
        "says a bad address came from FITTRACK_SERVER",
        *("goals", "list"),
        exit_code=EXIT_USAGE,
        env={"FITTRACK_SERVER": "nonsense"},
        mentions=("$FITTRACK_SERVER: 'nonsense' is not a server address",),
    ),
    cli(
        "refuses a goal for heart rate",
        *NOT_THERE, *("goals", "add", "--metric", "heart_rate", "--period", "daily", "--target", "60"),
        exit_code=EXIT_USAGE,
        mentions=("heart rate has no target",),
    ),
    cli(
        "refuses a negative goal target",
        *NOT_THERE, *("goals", "add", "--metric", "steps", "--period", "daily", "--target", "-5"),
        exit_code=EXIT_USAGE,
        mentions=("--target",),
    ),
    cli(
        "refuses a metric it does not know and lists the ones it does",
        *NOT_THERE, *("metrics", "view", "pulse"),
        exit_code=EXIT_USAGE,
        mentions=("unknown metric 'pulse'", "active_minutes, heart_rate"),
    ),
    cli(
        "refuses a date that is not one",
        *NOT_THERE, *("metrics", "view", "steps", "--from", "2026-13-01", "--to", "2026-12-01"),
        exit_code=EXIT_USAGE,
        mentions=("'2026-13-01' is not a date", "YYYY-MM-DD"),
    ),
    cli(
        "asks for --to with --from",
        *NOT_THERE, *("metrics", "view", "steps", "--from", "2026-11-01"),
        exit_code=EXIT_USAGE,
        mentions=("--from and --to go together",),
    ),
    cli(
        "says a readings file it cannot read is missing",
        *NOT_THERE, *("readings", "push", "{cwd}/missing.csv"),
        exit_code=EXIT_FAILED,
        mentions=("cannot read {cwd}/missing.csv",),
    ),
    cli(
        "says a readings file that is a directory is a directory",
        *NOT_THERE, *("readings", "push", "{cwd}"),
        exit_code=EXIT_FAILED,
        mentions=("{cwd} is a directory",),
    ),
    cli(
        "refuses to download into a directory that does not exist",
        *NOT_THERE, *("report", "download", *NOVEMBER, "-o", "{cwd}/no/such/x.csv"),
        exit_code=EXIT_FAILED,
        mentions=("the directory {cwd}/no/such does not exist",),
    ),
    cli(
        "refuses to write a report as a spreadsheet",
        *NOT_THERE, *("report", "download", *NOVEMBER, "-o", "nov.xlsx"),
        exit_code=EXIT_USAGE,
        mentions=("reports come as csv or pdf",),
    ),
    cli(
        "refuses a PDF into a .csv file",
        *NOT_THERE, *("report", "download", *NOVEMBER, "--format", "pdf", "-o", "nov.csv"),
        exit_code=EXIT_USAGE,
        mentions=("--format pdf does not match the file name nov.csv",),
    ),
    cli(
        "refuses quiet hours that are not a range",
        *NOT_THERE, *("notifications", "preferences", "--quiet", "22"),
        exit_code=EXIT_USAGE,
        mentions=("22:00-07:00",),
    ),
    cli("asks whom to log in", *NOT_THERE, "login", exit_code=EXIT_USAGE, mentions=("fittrack login USERNAME",)),
    cli(
        "asks to log in before listing goals",
        *NOT_THERE, *("goals", "list"),
        exit_code=EXIT_USAGE,
        mentions=("not logged in", "fittrack login USERNAME"),
    ),
    cli("forgets no session quietly", *("logout", "--local"), exit_code=0, stdout="There was no session here.\n"),
    cli(
        "refuses to simulate a day before 2000 before connecting",
        *NOT_THERE, *("simulate", "day", "--date", "1900-01-01"),
        exit_code=EXIT_FAILED,
        mentions=("1900-01-01 is before 2000-01-01",),
    ),
    cli(
        "says no server answers when logging in through SSO",
        *NOT_THERE, *("login", "--sso", "corp"),
        exit_code=EXIT_FAILED,
        mentions=("no Fittrack server answers at {down}", "make run"),
    ),
    *(
        cli(
            f"says no server answers to {' '.join(command)}",
            *LOGGED_IN_TO_A_DOWN_SERVER, *command,
            exit_code=EXIT_FAILED,
            mentions=("no Fittrack server answers at {session}", "make run"),
        )
        for command in (
            ("goals", "list"),
            ("profile", "show"),
            ("metrics", "view", "steps"),
            ("report", "view"),
            ("report", "download", *NOVEMBER, "-o", "-"),
            ("notifications", "watch"),
            ("simulate", "day"),
        )
    ),
    cli(
        "keeps the session when the server is down at logout and says how to forget it",
        *LOGGED_IN_TO_A_DOWN_SERVER, "logout",
        exit_code=EXIT_FAILED,
        mentions=("cannot reach {session}", "fittrack logout --local"),
    ),
    cli(
        "says a plaintext server does not speak TLS to grpcs://",
        *("--server", "grpcs://{server}", "login", "--sso", "corp"),
        exit_code=EXIT_FAILED,
        mentions=("does not speak TLS", "drop grpcs://"),
    ),
]  # fmt: skip

CASES = [*ADMIN_CASES, *SIMULATOR_CASES, *LOADGEN_CASES, *SERVER_CASES, *FITTRACK_CASES]


# --- running them ---


@pytest.fixture(scope="module")
def down_address():
    """An address where nothing listens: a port held, bound but not listening, so no one else takes it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture(scope="module")
def plaintext_server(tmp_path_factory):
    running = RunningServer(Config(**server_settings(tmp_path_factory.mktemp("server"))), Clock())
    yield running.address
    running.stop()


class Places(dict):
    """The placeholders' values, each made when a case first asks for it."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(cwd=str(tmp_path / "cwd"))
        self._request = request
        self._tmp_path = tmp_path

    def __missing__(self, name: str) -> str:
        self[name] = getattr(self, f"_make_{name}")()
        return self[name]

    def _make_down(self) -> str:
        return self._request.getfixturevalue("down_address")

    def _make_server(self) -> str:
        return self._request.getfixturevalue("plaintext_server")

    def _make_database(self) -> str:
        path = self._tmp_path / "server-var" / "fittrack.sqlite3"
        database = SqliteDatabase(path)
        database.migrate()
        database.close()
        return str(path)

    def _make_junk(self) -> str:
        path = self._tmp_path / "junk.txt"
        path.write_text("not a database, not a certificate\n")
        return str(path)

    def _make_session(self) -> str:
        """A stored login for an address where nothing listens, as left by a server that has since gone."""
        address = self["down"]
        directory = Path(self["cwd"] + "-config") / "fittrack"
        directory.mkdir(parents=True, exist_ok=True)
        far = "2999-01-01T00:00:00+00:00"
        session = {
            "server": address,
            "username": "gone",
            "user_id": "u-1",
            "access_token": "not-a-real-token",
            "access_token_expires_at": far,
            "refresh_token": "not-a-real-refresh-token",
            "refresh_token_expires_at": far,
        }
        (directory / "session.json").write_text(json.dumps(session))
        return address

    def _make_data(self) -> str:
        return str(self._tmp_path / "data")

    def fill(self, text: str) -> str:
        return text.format_map(self)


@pytest.fixture
def places(request, tmp_path) -> Places:
    (tmp_path / "cwd").mkdir()
    return Places(request, tmp_path.resolve())


def run(case: Case, places: Places) -> subprocess.CompletedProcess:
    # Nothing of the test run's own settings leaks in, nor a gRPC log level that would hide the C core's lines.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FITTRACK_", "GRPC_VERBOSITY", "GRPC_TRACE"))
    }
    env["XDG_CONFIG_HOME"] = str(places.fill("{cwd}") + "-config")
    env.update({name: places.fill(value) for name, value in case.env.items()})
    program, *arguments = case.command
    executable = [sys.executable] if program == "python" else [str(BIN / program)]
    return subprocess.run(
        [*executable, *(places.fill(argument) for argument in arguments)],
        cwd=places["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=case.timeout,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.says)
def test_a_console_script_answers_a_mistake_or_a_missing_server_with_what_to_fix_and_no_traceback(case, places):
    result = run(case, places)
    stderr = result.stderr
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stderr, shown
    assert not GRPC_LOG_LINE.search(stderr), f"gRPC's own log lines on stderr:\n{shown}"
    assert result.returncode == case.exit_code, shown
    errors = [line for line in stderr.splitlines() if line.startswith(case.error_prefix)]
    assert len(errors) == (1 if case.exit_code else 0), f"expected one line starting {case.error_prefix!r}:\n{shown}"
    said = stderr if case.exit_code else result.stdout
    for fragment in case.mentions:
        assert places.fill(fragment) in said, f"{fragment!r} not said:\n{shown}"
    assert result.stdout == places.fill(case.stdout), shown
    assert not any(Path(places["cwd"]).iterdir()), f"left behind in the working directory: {shown}"
