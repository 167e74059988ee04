"""The README's walk-throughs, run as written: every command of its CLI and grpcurl blocks, from a fresh
server, with each command's output checked.

The blocks are taken from README.md itself and run by bash, in order, in a terminal (a pty, so that
`fittrack register` and `fittrack login` prompt for the password as they do for a person; the test types
it). Two things differ from a person's session, both by necessity: the server listens on a free port, so
`127.0.0.1:50051` becomes its address (and FITTRACK_SERVER names it for the CLI), and the commands run in a
scratch directory that links to the checkout's .venv and var/bin, so the files they write land there.
A README command without an expectation below fails the test: change both together.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli_runner import REPO_ROOT, table

README = REPO_ROOT / "README.md"
PASSWORD = "walk-through passphrase 42"
MARKER = "@@@ command "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
Check = Callable[[str, "Walk"], None]


def code_block(title: str) -> str:
    """The first ```sh block of the README section with this title."""
    text = README.read_text()
    section = text[text.index(f"## {title}\n") :]
    section = section[: section.index("\n## ")]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def commands(block: str) -> list[str]:
    """The block's commands: a line with its `\\` continuations and here-documents; comments and blanks dropped."""
    found: list[str] = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        while command[-1].endswith("\\"):
            command.append(lines[index])
            index += 1
        heredoc = re.search(r"<<'?(\w+)'?", command[0])
        if heredoc:
            while lines[index] != heredoc.group(1):
                command.append(lines[index])
                index += 1
            command.append(lines[index])
            index += 1
        found.append("\n".join(command))
    return found


class Walk:
    """The run of a block: each command's output, and what the test knows about the day."""

    def __init__(self, directory: Path, outputs: list[str], zone: str) -> None:
        self.directory = directory
        self.outputs = outputs
        # In the account's time zone, as the CLI reads `today` and `yesterday` and the server places readings.
        self.today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
        self.yesterday = self.today - timedelta(days=1)


def run_block(block: str, address: str, directory: Path, config_home: Path) -> list[str]:
    """Run the block's commands with bash in a terminal; return each command's output (ANSI codes removed)."""
    listed = commands(block)
    script = ["set -euo pipefail"]
    for number, command in enumerate(listed):
        script.append(f"printf '{MARKER}%d\\n' {number}")
        script.append(command.replace("127.0.0.1:50051", address))
    script.append(f"printf '{MARKER}end\\n'")
    (directory / "walk.sh").write_text("\n".join(script) + "\n")

    controller, terminal = os.openpty()
    # A wide terminal, so that tables are not folded to 80 columns.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FITTRACK_", "VIRTUAL_ENV"))},
        "FITTRACK_SERVER": address,
        "XDG_CONFIG_HOME": str(config_home),
        "NO_COLOR": "1",
        "TERM": "dumb",
        "TZ": "UTC",
    }

    def become_terminal_owner() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        ["bash", "walk.sh"], stdin=terminal, stdout=terminal, stderr=terminal, cwd=directory, env=env,
        preexec_fn=become_terminal_owner,
    )  # fmt: skip
    os.close(terminal)
    shown = _converse(controller, process, deadline=time.monotonic() + 240)
    text = ANSI.sub("", shown.decode(errors="replace")).replace("\r\n", "\n").replace("\r", "\n")
    assert process.returncode == 0, f"a README command failed:\n{text[-3000:]}"
    parts = text.split(MARKER)
    outputs = {}
    for part in parts[1:]:
        label, _, output = part.partition("\n")
        outputs[label] = output
    assert "end" in outputs, text[-3000:]
    return [outputs[str(number)] for number in range(len(listed))]


def _converse(controller: int, process: subprocess.Popen, deadline: float) -> bytes:
    """Everything the terminal shows, typing the password at each prompt for it."""
    shown = b""
    answered = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the walk-through did not finish:\n{shown.decode(errors='replace')[-2000:]}"
            ready, _, _ = select.select([controller], [], [], min(remaining, 1.0))
            if ready:
                try:
                    piece = os.read(controller, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not piece:
                    break
                shown += piece
                prompts = len(re.findall(rb"(?:Password|Repeat it): ", shown))
                if prompts > answered:
                    os.write(controller, PASSWORD.encode() + b"\n")
                    answered = prompts
            elif process.poll() is not None:
                break
    finally:
        os.close(controller)
        process.wait(timeout=30)
    return shown


# --- what each command of the CLI walk-through shows ---


def says(*phrases: str) -> Check:
    def check(output: str, walk: Walk) -> None:
        for phrase in phrases:
            assert phrase.format(today=walk.today, yesterday=walk.yesterday) in output, output

    return check


def shows(pattern: str) -> Check:
    def check(output: str, walk: Walk) -> None:
        assert re.search(pattern, output), output

    return check


def quiet(output: str, walk: Walk) -> None:
    assert output == "", output


def goals_table(output: str, walk: Walk) -> None:
    rows = table(output)
    assert [(r["PERIOD"], r["METRIC"], r["TARGET"], r["STATUS"]) for r in rows] == [
        ("daily", "steps", "8,000 steps", "active"),
        ("weekly", "distance", "35 km", "active"),
    ]


def profile_fields(output: str, walk: Walk) -> None:
    assert re.search(r"display name\s+Alice Martin\n", output), output
    assert re.search(r"time zone\s+Europe/Paris\n", output), output
    assert re.search(r"height\s+168 cm\n", output), output


def steps_today(output: str, walk: Walk) -> None:
    assert f"steps, {walk.today} to {walk.today}" in output
    (row,) = table(output.split("\n", 1)[1].split("\n\n")[0].rsplit("\ntotal", 1)[0])
    assert row["DATE"] == str(walk.today) and int(row["STEPS"].replace(",", "")) >= 205  # the CSV's, at least
    assert re.search(r"total [\d,]+ steps, average [\d,]+ steps per day with data \(1 of 1 day with data\)", output)


def heart_rate_week(output: str, walk: Walk) -> None:
    assert "heart_rate (bpm)" in output and "DATE" in output and "MIN" in output
    assert re.search(r"min \d+ / avg \d+ / max \d+ bpm \([12] of 7 days with data\)", output), output
    assert re.search(r"\n[·▁▂▃▄▅▆▇█]{7}\n", output), output  # a sparkline, dots for days without data


def progress_of_both_goals(output: str, walk: Walk) -> None:
    assert output.count("Goal ") == 2 + output.count("Goal met.")
    assert re.search(r"daily steps 8,000 steps\n.*of 8,000 steps \(\d+%\)", output), output
    assert re.search(r"weekly distance 35 km\n.*: [\d.,]+ km of 35 km", output), output


def this_weeks_report(output: str, walk: Walk) -> None:
    monday = walk.today - timedelta(days=walk.today.weekday())
    assert output.startswith(f"Weekly report, {monday} to {monday + timedelta(days=6)}\n"), output
    steps = output.split("\nsteps\n", 1)[1].split("\n\n", 1)[0]
    # Today's readings are in it (yesterday's too, unless today is a Monday).
    so_far = walk.today.weekday() + 1
    judged = "7 days" if so_far == 7 else f"{so_far} day{'s' if so_far > 1 else ''} so far"
    assert re.search(r"total\s+[\d,]+ steps", steps), output
    assert re.search(rf"goal met\s+\d+ of {judged} \(daily goal", steps), output


def csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as file:
        return {row["date"]: row for row in csv.DictReader(file)}


def saved_csv(name: str) -> Check:
    def check(output: str, walk: Walk) -> None:
        assert re.search(rf"Saved {re.escape(name)} \([\d,]+ bytes, text/csv\)\.", output), output
        rows = csv_rows(walk.directory / name)
        assert int(rows[str(walk.today)]["steps"]) >= 205  # today's readings, the CSV upload's at least

    return check


def saved_pdf(name: str, same_range_as: str) -> Check:
    """The PDF, read back as text: the person's name, the daily goal, and the steps total the CSV holds."""

    def check(output: str, walk: Walk) -> None:
        assert re.search(rf"Saved {re.escape(name)} \([\d,]+ bytes, application/pdf\)\.", output), output
        command = ["pdftotext", "-layout", str(walk.directory / name), "-"]
        text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
        rows = csv_rows(walk.directory / same_range_as)
        steps = sum(int(row["steps"]) for row in rows.values() if row["steps"])
        assert "Fittrack report: Alice Martin" in text, text
        assert f"{steps:,} steps" in text, f"the CSV's {steps:,} steps are not on the page:\n{text}"
        assert "8,000 steps" in text, text  # the daily goal

    return check


CLI_WALK: list[tuple[str, Check]] = [
    (". .venv/bin/activate", quiet),
    ("fittrack register alice", says("Registered alice (time zone Europe/Paris).", "fittrack login alice")),
    ("fittrack login alice", says("Logged in as alice on")),
    ("fittrack profile show", profile_fields),
    ("fittrack goals add --metric steps", says("Added goal ", ": daily steps 8,000 steps")),
    ("fittrack goals add --metric distance", says(": weekly distance 35 km")),
    ("fittrack goals list", goals_table),
    ("T0=$(TZ=Europe/Paris date -d 00:00", quiet),
    ("printf 'time,metric,value", quiet),
    ("fittrack readings push walk.csv", says("Uploaded 2 readings in 1 batch, ")),
    (
        "fittrack simulate day --device-id watch-1 --date yesterday",
        says("Simulated {yesterday} on watch-1: ", "sent from the first batch"),
    ),
    ("fittrack simulate day --device-id watch-1", says("Simulated {today} on watch-1: ", "0 duplicate")),
    ("fittrack metrics view steps --today", steps_today),
    ("fittrack metrics view heart_rate --week", heart_rate_week),
    ("fittrack goals progress", progress_of_both_goals),
    ("fittrack report view --week --date today", this_weeks_report),
    ("fittrack report download --from 2026-01-01 --to today -o 2026.csv", saved_csv("2026.csv")),
    ("fittrack report download --from 2026-01-01 --to today -o 2026.pdf", saved_pdf("2026.pdf", "2026.csv")),
    ("fittrack notifications list", shows(r"No notifications\.\n|\d+ unread\.\n")),
    ("fittrack logout", says("Logged out.")),
]


def grpc_json(*keys: str) -> Check:
    def check(output: str, walk: Walk) -> None:
        for key in keys:
            assert f'"{key}"' in output, output

    return check


def as_date(message: dict) -> date:
    return date(message["year"], message["month"], message["day"])


def week_of_the_upload(output: str, walk: Walk) -> None:
    """The week holding bob's today, with the 165 steps uploaded just after midnight against his goal."""
    report = json.loads(output)
    monday = walk.today - timedelta(days=walk.today.weekday())
    assert (as_date(report["start"]), as_date(report["end"])) == (monday, monday + timedelta(days=6)), output
    (steps,) = [metric for metric in report["metrics"] if metric["metric"] == "METRIC_KIND_STEPS"]
    assert steps["total"] == 165 and steps["daily_goal_target"] == 10000, output
    days_with_data = {as_date(day["date"]): day["value"] for day in steps["days"] if day.get("has_data")}
    assert days_with_data == {walk.today: 165}, output


GRPCURL_WALK: list[tuple[str, Check]] = [
    ('export PATH="$PWD/var/bin:$PATH"', quiet),
    ("grpcurl -plaintext 127.0.0.1:50051 list", says("fittrack.v1.MetricService", "grpc.health.v1.Health")),
    (
        "grpcurl -plaintext 127.0.0.1:50051 describe",
        says("rpc SyncReadings ( stream .fittrack.v1.SyncReadingsRequest )"),
    ),
    ("grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check", says('"status": "SERVING"')),
    ('grpcurl -plaintext -d \'{"username": "bob"', grpc_json("user_id", "profile")),
    ("TOKEN=$(grpcurl", quiet),
    (
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:50051 fittrack.v1.AccountService/GetProfile',
        says('"username": "bob"', '"time_zone": "America/New_York"'),
    ),
    (
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d \'{"metric": "METRIC_KIND_STEPS", "period"',
        says('"period": "GOAL_PERIOD_DAILY"', '"target": 10000'),
    ),
    ("T0=$(TZ=America/New_York date -d 00:00", quiet),
    (
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d @ 127.0.0.1:50051 fittrack.v1.MetricService/Upload',
        says('"batches_accepted": 2', '"readings_accepted": "2"'),
    ),
    (
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d \'{"metric": "METRIC_KIND_STEPS", "preset"',
        says('"total": 165'),
    ),
    ("ANCHOR=$(TZ=America/New_York date", quiet),
    (
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d @ 127.0.0.1:50051 fittrack.v1.ReportService/View',
        week_of_the_upload,
    ),
]


@pytest.fixture
def scratch(tmp_path) -> Path:
    """A directory like the checkout for the commands (its .venv and var/bin), where they may write files."""
    directory = tmp_path / "walk"
    (directory / "var").mkdir(parents=True)
    (directory / ".venv").symlink_to(REPO_ROOT / ".venv")
    (directory / "var" / "bin").symlink_to(REPO_ROOT / "var" / "bin")
    return directory


def walk_through(title: str, expected: list[tuple[str, Check]], server, scratch, zone: str) -> None:
    block = code_block(title)
    listed = commands(block)
    assert len(listed) == len(expected), f"the README's {title} has {len(listed)} commands: {listed}"
    for command, (prefix, _) in zip(listed, expected, strict=True):
        assert command.startswith(prefix), f"README command {command!r} is not the expected {prefix!r}"
    outputs = run_block(block, server.address, scratch, scratch.parent / "config")
    walk = Walk(scratch, outputs, zone)
    for command, output, (_, check) in zip(listed, outputs, expected, strict=True):
        try:
            check(output, walk)
        except AssertionError as failure:
            raise AssertionError(f"README command {command!r} showed:\n{output}") from failure


# Usernames in the README are fixed (alice, bob): the production profile's shared databases would hold
# them from an earlier run, so the walk-throughs run on a fresh embedded server, as `make run` gives.
@pytest.mark.parametrize("profile", ["embedded"])
def test_the_readme_cli_walk_through_runs_as_written(server, scratch):
    walk_through("Walk-through with the CLI", CLI_WALK, server, scratch, "Europe/Paris")


@pytest.mark.parametrize("profile", ["embedded"])
@pytest.mark.skipif(not (REPO_ROOT / "var" / "bin" / "grpcurl").exists(), reason="run `make grpcurl` first")
def test_the_readme_grpcurl_walk_through_runs_as_written(server, scratch):
    walk_through("Walk-through with grpcurl", GRPCURL_WALK, server, scratch, "America/New_York")
