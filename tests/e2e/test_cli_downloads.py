"""`fittrack report download`: where the file goes, what the terminal shows meanwhile, and which ranges it takes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fittrack.generated.v1 import account_pb2
from tests.cli_runner import REPO_ROOT, in_a_terminal, utc_today, write_csv
from tests.e2e.test_cli_first_hour import ANSI, assert_explained
from tests.support import PASSWORD

# The bar Rich draws: its track, and the rate and time columns.
BAR = "━"


def last_drawn_line(drawn: str) -> str:
    """The last line a terminal shows once every redraw has happened (carriage returns overwrite)."""
    shown = ANSI.sub("", drawn)
    return shown.replace("\r\n", "\n").split("\r")[-1].splitlines()[-1]


# --- where the file goes ---


def test_a_download_into_a_missing_directory_says_so_and_writes_nothing(cli, logged_in, tmp_path):
    target = tmp_path / "no" / "such" / "x.csv"
    result = cli.run("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(target))
    assert_explained(result, 1, f"the directory {target.parent} does not exist")
    assert not target.parent.exists()


def test_a_download_to_a_directory_saves_the_servers_file_name_inside_it(cli, logged_in, tmp_path):
    result = cli.ok("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(tmp_path))
    (saved,) = [path for path in tmp_path.iterdir() if path.suffix == ".csv"]
    assert saved.read_text().startswith("date,steps,calories,distance,active_minutes,heart_rate,")
    assert result == f"Saved {saved} ({saved.stat().st_size:,} bytes, text/csv).\n"


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (("-o", "nov.xlsx"), "cannot write an xlsx file: reports come as csv or pdf"),
        (("--format", "pdf", "-o", "nov.csv"), "--format pdf does not match the file name nov.csv"),
        (("--timeout", "0", "-o", "nov.csv"), "0 must be a number above 0"),
    ],
)
def test_a_download_whose_options_disagree_is_a_usage_error_and_writes_nothing(
    cli, logged_in, tmp_path, arguments, phrase
):
    result = subprocess.run(
        cli.argv("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", *arguments),
        capture_output=True, text=True, cwd=tmp_path, env=cli.env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert phrase in result.stderr and "Traceback" not in result.stderr
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("nov")]


def test_a_download_to_stdout_keeps_the_progress_off_the_data(cli, logged_in, tmp_path):
    yesterday = utc_today() - timedelta(days=1)
    cli.ok("readings", "push", str(write_csv(tmp_path / "r.csv", [(f"{yesterday}T09:00:00Z", "steps", 420)])))
    result = subprocess.run(
        cli.argv("report", "download", "--from", str(yesterday), "--to", str(yesterday), "-o", "-"),
        capture_output=True, cwd=REPO_ROOT, env=cli.env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.decode().splitlines()[0].startswith("date,steps,")
    assert b"received" not in result.stdout and b"received" in result.stderr


def test_a_download_into_a_fifo_or_through_a_symlink_keeps_them_what_they_are(cli, logged_in, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    cli.ok("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(link))
    assert link.is_symlink() and real.read_text().startswith("date,steps,")

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    cli.ok("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(fifo))
    reader.join(30)
    assert received and received[0].startswith(b"date,steps,")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_download_into_a_directory_that_does_not_exist_written_with_a_slash_is_refused(cli, logged_in, tmp_path):
    target = tmp_path / "newdir"
    result = cli.run("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", f"{target}/")
    assert_explained(result, 1, "there is no such directory")
    assert not target.exists()


def test_a_download_to_stdout_piped_into_head_ends_quietly(cli, logged_in):
    command = " ".join(cli.argv("report", "download", "--from", "2016-12-01", "--to", "2026-11-30", "-o", "-"))
    result = subprocess.run(
        ["bash", "-c", f"{command} | head -c 10"], capture_output=True, text=True, env=cli.env(), timeout=60
    )
    assert result.stdout == "date,steps"
    assert result.stderr == ""


def test_a_file_that_cannot_be_written_is_named_as_given_not_as_the_part_written_aside(cli, logged_in):
    result = cli.run("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "/proc/x.csv")
    assert_explained(result, 1, "cannot write /proc/x.csv:")
    assert ".part" not in result.stderr


# --- what the terminal shows ---


def test_a_download_that_comes_in_one_chunk_shows_its_rate_when_it_finishes(cli, logged_in, tmp_path):
    output = tmp_path / "day.csv"
    result, drawn = in_a_terminal(
        cli.argv("report", "download", "--from", "2026-11-01", "--to", "2026-11-01", "-o", str(output)),
        cli.env(), stdout_too=False,
    )  # fmt: skip
    assert result.returncode == 0, drawn
    last = last_drawn_line(drawn)
    assert output.name in last and "100%" in last
    # One chunk gives Rich a single sample, from which it cannot tell a rate: the overall one is shown.
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", last), last
    assert "?" not in last, last


def test_a_download_to_stdout_on_a_terminal_draws_no_bar_over_the_data(cli, logged_in, tmp_path):
    yesterday = utc_today() - timedelta(days=1)
    cli.ok("readings", "push", str(write_csv(tmp_path / "r.csv", [(f"{yesterday}T09:00:00Z", "steps", 420)])))
    result, drawn = in_a_terminal(
        cli.argv("report", "download", "--from", str(yesterday), "--to", str(yesterday), "-o", "-"), cli.env()
    )
    assert result.returncode == 0, drawn
    shown = ANSI.sub("", drawn).replace("\r\n", "\n")
    assert shown.startswith("date,steps,"), shown
    assert BAR not in shown and "\r" not in shown, shown
    assert shown.endswith(" bytes (100%)\n"), shown  # the one summary line, after the data


def test_a_pdf_is_not_written_to_a_terminal_and_the_hint_says_to_name_a_file(cli, logged_in):
    result, drawn = in_a_terminal(
        cli.argv("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "pdf", "-o", "-"),
        cli.env(),
    )
    assert result.returncode == 2, drawn
    shown = ANSI.sub("", drawn)
    assert shown.startswith("error: a PDF is binary"), shown
    assert "-o FILE" in shown and "%PDF" not in shown and "Traceback" not in shown


def test_a_pdf_to_stdout_in_a_pipe_is_written_as_asked(cli, logged_in):
    result = subprocess.run(
        cli.argv("report", "download", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "pdf", "-o", "-"),
        capture_output=True, cwd=REPO_ROOT, env=cli.env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"%PDF-")


# --- ranges ---


def test_a_range_that_ends_before_it_starts_is_a_usage_error_naming_both_dates(cli, logged_in):
    result = cli.run("report", "download", "--from", "2026-12-01", "--to", "2026-11-01", "-o", "-")
    assert_explained(result, 2, "--from 2026-12-01 is after --to 2026-11-01", "--from 2026-11-01 --to 2026-12-01")
    assert "INVALID_ARGUMENT" not in result.stderr
    view = cli.run("metrics", "view", "steps", "--from", "2026-12-01", "--to", "2026-11-01")
    assert_explained(view, 2, "--from 2026-12-01 is after --to 2026-11-01")


def test_a_range_that_ends_after_today_where_the_account_lives_is_refused(cli, stubs, new_username):
    # UTC+14: for most of the day, today there is tomorrow on this machine (UTC), and must still be taken.
    zone = "Pacific/Kiritimati"
    username = new_username("east")
    stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=PASSWORD, profile=account_pb2.ProfileFields(time_zone=zone)
        )
    )
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()

    assert cli.run("report", "download", "--from", str(today), "--to", str(today), "-o", "-").returncode == 0
    tomorrow = today + timedelta(days=1)
    refused = cli.run("report", "download", "--from", str(today), "--to", str(tomorrow), "-o", "-")
    assert_explained(refused, 2, f"--to {tomorrow} is after today ({today} in {zone})", "--to today")
    assert refused.stdout == ""
