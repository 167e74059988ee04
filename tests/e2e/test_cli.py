"""The `fittrack` command against a real server, run as a subprocess the way people and scripts run it."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import stat
import subprocess
from datetime import timedelta

import grpc
import pytest

from fittrack.clients.activity import STEPS, simulate_day
from fittrack.generated.v1 import account_pb2
from tests.cli_runner import REPO_ROOT, Cli, in_a_terminal, read_line, table, utc_today, write_csv
from tests.support import PASSWORD, RunningServer, eventually, rpc_error


def test_a_new_user_registers_logs_in_and_sees_their_profile(cli, new_username):
    username = new_username("ann")
    registered = cli.ok(
        "register", username, "--password-stdin", "--time-zone", "Europe/Paris", "--height-cm", "172",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert f"Registered {username}" in registered

    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    profile = cli.ok("profile", "show")

    assert username in profile
    assert "Europe/Paris" in profile
    assert "172 cm" in profile


def test_the_session_file_is_readable_by_its_owner_only(cli, logged_in):
    assert stat.S_IMODE(cli.session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.session_file.parent.stat().st_mode) == 0o700
    session = json.loads(cli.session_file.read_text())
    assert session["username"] == logged_in
    assert PASSWORD not in cli.session_file.read_text()


def test_a_wrong_password_is_refused_in_words(cli, stubs, new_username):
    username = new_username("eve")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))

    result = cli.run("login", username, "--password-stdin", stdin="not the password\n")

    assert result.returncode == 1
    assert result.stderr == "error: unknown username or wrong password\n"
    assert not cli.session_file.exists()


def test_a_command_without_login_asks_to_log_in_first(cli):
    result = cli.run("goals", "list")

    assert result.returncode == 2
    assert "not logged in" in result.stderr
    assert "fittrack login" in result.stderr


def test_goals_added_from_the_command_line_are_listed(cli, logged_in):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "10000")
    cli.ok("goals", "add", "--metric", "active-minutes", "--period", "weekly", "--target", "150")

    listed = cli.json("goals", "list")["goals"]

    assert [(g["metric"], g["period"], g["target"]) for g in listed] == [
        ("steps", "daily", 10000),
        ("active_minutes", "weekly", 150),
    ]
    shown = table(cli.ok("goals", "list"))
    assert [(row["PERIOD"], row["METRIC"], row["TARGET"], row["STATUS"]) for row in shown] == [
        ("daily", "steps", "10,000 steps", "active"),
        ("weekly", "active_minutes", "150 min", "active"),
    ]
    assert [row["ID"] for row in shown] == [goal["goal_id"] for goal in listed]


def test_a_goals_notifications_are_switched_off_and_on_from_the_command_line(cli, logged_in):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "8000", "--no-notify")
    (goal,) = cli.json("goals", "list")["goals"]
    assert goal.get("notify", False) is False
    assert table(cli.ok("goals", "list"))[0]["STATUS"] == "active, no notifications"
    cli.ok("goals", "update", goal["goal_id"], "--notify", "yes")
    assert cli.json("goals", "list")["goals"][0]["notify"] is True


def test_notification_preferences_are_shown_and_changed_from_the_command_line(cli, logged_in):
    assert "Notifications: on" in cli.ok("notifications", "preferences")
    changed = cli.ok("notifications", "preferences", "--off", "--quiet", "22:30-07:00")
    assert "Notifications: off" in changed and "Quiet hours: 22:30 to 07:00" in changed
    assert "Quiet hours: none" in cli.ok("notifications", "preferences", "--on", "--no-quiet")
    refused = cli.run("notifications", "preferences", "--quiet", "22:30")
    assert refused.returncode == 2 and "22:00-07:00" in refused.stderr


def test_pushed_readings_show_up_in_the_metric_view(cli, logged_in, tmp_path):
    today = utc_today().isoformat()
    readings = write_csv(
        tmp_path / "readings.csv",
        [
            (f"{today}T00:00:00Z", "steps", 120),
            (f"{today}T00:01:00Z", "steps", 95),
            (f"{today}T00:01:00Z", "heart_rate", 88),
        ],
    )

    pushed = cli.ok("readings", "push", str(readings))
    assert "Uploaded 3 readings" in pushed

    view = eventually(lambda: cli.json("metrics", "view", "steps", "--today"), lambda v: v["total"] == 215)
    assert view["days"][0]["minutes_with_data"] == 2
    assert "total 215 steps" in cli.ok("metrics", "view", "steps", "--today")


def test_the_metric_view_shows_each_devices_own_total_beside_the_merged_one(cli, logged_in, tmp_path):
    today = utc_today().isoformat()
    watch_rows = [(f"{today}T00:00:00Z", "steps", 100), (f"{today}T00:01:00Z", "steps", 50)]
    watch = write_csv(tmp_path / "watch.csv", watch_rows)
    phone = write_csv(tmp_path / "phone.csv", [(f"{today}T00:00:00Z", "steps", 120)])
    cli.ok("readings", "push", str(watch), "--device-id", "watch")
    cli.ok("readings", "push", str(phone), "--device-id", "phone")

    eventually(lambda: cli.json("metrics", "view", "steps", "--today"), lambda v: len(v.get("sources", [])) == 2)
    shown = cli.ok("metrics", "view", "steps", "--today")
    assert "total 170 steps" in shown
    by_source = table(shown.split("By source (own total, before merging):\n")[1])
    assert [(row["SOURCE"], row["STEPS"]) for row in by_source] == [("phone", "120"), ("watch", "150")]


def test_a_bad_csv_row_is_reported_by_line_and_nothing_is_sent(cli, logged_in, tmp_path):
    today = utc_today().isoformat()
    bad = write_csv(tmp_path / "bad.csv", [(f"{today}T00:00:00Z", "steps", 100), (f"{today}T00:01:00Z", "steps", 5000)])

    result = cli.run("readings", "push", str(bad))

    assert result.returncode == 1
    assert f"{bad}:3:" in result.stderr
    # Batches are applied in order: once a later push shows up, an earlier one would have too.
    later = write_csv(tmp_path / "later.csv", [(f"{today}T00:02:00Z", "heart_rate", 70)])
    cli.ok("readings", "push", str(later))
    eventually(lambda: cli.json("metrics", "view", "heart-rate", "--today"), lambda v: v["days_with_data"] == 1)
    assert cli.json("metrics", "view", "steps", "--today")["total"] == 0


def test_a_simulated_day_is_accepted_and_resumes_after_the_last_durable_batch(cli, logged_in):
    yesterday = utc_today() - timedelta(days=1)
    expected_steps = sum(value for kind, _, value in simulate_day(yesterday, "UTC", seed=7) if kind == STEPS)

    first = cli.json("simulate", "day", "--date", yesterday.isoformat(), "--seed", "7")

    assert first["batches_accepted"] > 0
    assert first["batches_rejected"] == first["batches_duplicate"] == 0
    assert first["readings_accepted"] == first["readings"]
    view = eventually(
        lambda: cli.json("metrics", "view", "steps", "--from", yesterday.isoformat(), "--to", yesterday.isoformat()),
        # Batches are applied as they come: wait for the whole day, not its first part.
        lambda v: v["total"] == expected_steps,
    )
    assert view["total"] == expected_steps

    again = cli.json("simulate", "day", "--date", yesterday.isoformat(), "--seed", "7")
    assert again["resumed_after"] == first["batches_accepted"]


def test_a_downloaded_report_holds_the_pushed_values(cli, logged_in, tmp_path):
    two_days_ago, yesterday = utc_today() - timedelta(days=2), utc_today() - timedelta(days=1)
    rows = [
        (f"{two_days_ago}T10:00:00Z", "steps", 700),
        (f"{two_days_ago}T10:01:00Z", "steps", 650),
        (f"{yesterday}T18:30:00+02:00", "distance", 1200.5),
    ]
    cli.ok("readings", "push", str(write_csv(tmp_path / "readings.csv", rows)))
    output = tmp_path / "report.csv"

    def download() -> dict[str, dict[str, str]]:
        cli.ok("report", "download", "--from", str(two_days_ago), "--to", str(yesterday), "--output", str(output))
        with open(output, newline="") as file:
            return {row["date"]: row for row in csv.DictReader(file)}

    days = eventually(download, lambda d: d[str(two_days_ago)]["steps"] != "" and d[str(yesterday)]["distance"])

    assert float(days[str(two_days_ago)]["steps"]) == 1350
    assert float(days[str(yesterday)]["distance"]) == 1200.5
    assert not output.with_name("report.csv.part").exists()


def test_a_report_downloads_as_a_pdf_and_says_so_in_one_line_when_stderr_is_not_a_terminal(cli, logged_in, tmp_path):
    yesterday = utc_today() - timedelta(days=1)
    cli.ok("readings", "push", str(write_csv(tmp_path / "readings.csv", [(f"{yesterday}T09:00:00Z", "steps", 420)])))
    output = tmp_path / "report.bin"  # no telling extension: --format decides

    result = cli.run(
        "report", "download", "--from", str(yesterday - timedelta(days=30)), "--to", str(yesterday),
        "--format", "pdf", "-o", str(output),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    content = output.read_bytes()
    assert content.startswith(b"%PDF-")
    assert result.stderr == f"{output.name}: received {len(content):,} of {len(content):,} bytes (100%)\n"
    assert result.stdout == f"Saved {output} ({len(content):,} bytes, application/pdf).\n"
    assert not output.with_name("report.bin.part").exists()


def test_a_report_download_takes_its_format_from_the_output_extension(cli, logged_in, tmp_path):
    yesterday = utc_today() - timedelta(days=1)
    pdf, text = tmp_path / "year.PDF", tmp_path / "year.txt"
    cli.ok("report", "download", "--from", str(yesterday), "--to", str(yesterday), "-o", str(pdf))
    cli.ok("report", "download", "--from", str(yesterday), "--to", str(yesterday), "-o", str(text), "--format", "csv")
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert text.read_text().startswith("date,steps,")


def test_a_report_download_draws_a_progress_bar_when_stderr_is_a_terminal(cli, logged_in, tmp_path):

    yesterday = utc_today() - timedelta(days=1)
    output = tmp_path / "decade.csv"
    result, drawn = in_a_terminal(
        cli.argv("report", "download", "--from", str(yesterday - timedelta(days=3659)), "--to", str(yesterday),
                 "-o", str(output)),
        cli.env(), stdout_too=False,
    )  # fmt: skip
    assert result.returncode == 0, drawn
    size = output.stat().st_size
    assert size > 64 * 1024  # ten empty years: more than one chunk, so the bar moved
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)  # without colours and cursor moves
    last = shown.replace("\r\n", "\n").split("\r")[-1].splitlines()[-1]
    # The finished bar stays on its own line, with the size, the rate and the time left.
    assert output.name in last and "100%" in last
    assert f"{size / 1000:.1f}" in last or f"{size / 1000 / 1000:.1f}" in last
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", last) and re.search(r"\d+:\d\d:\d\d", last)
    assert shown.endswith("\n")
    # The data's own stream holds the result only.
    assert result.stdout == f"Saved {output} ({size:,} bytes, text/csv).\n"


@pytest.fixture
def short_token_server(server_config, clock):
    """A server whose access tokens last one second, so a session outlives several of them."""
    running = RunningServer(dataclasses.replace(server_config, access_token_ttl_seconds=1), clock)
    yield running
    running.stop()


def test_an_expired_access_token_is_refreshed_without_the_user_noticing(short_token_server, tmp_path):
    cli = Cli(short_token_server.address, tmp_path / "config")
    cli.ok("register", "refresher", "--password-stdin", "--time-zone", "UTC", stdin=PASSWORD + "\n")
    cli.ok("login", "refresher", "--password-stdin", stdin=PASSWORD + "\n")
    first = json.loads(cli.session_file.read_text())

    def profile_and_session() -> tuple[str, dict]:
        return cli.ok("profile", "show"), json.loads(cli.session_file.read_text())

    # Every call must succeed; once the first token has run out, one of them refreshes it.
    profile, renewed = eventually(
        profile_and_session, lambda result: result[1]["access_token"] != first["access_token"]
    )

    assert "refresher" in profile
    assert renewed["refresh_token"] != first["refresh_token"]
    assert stat.S_IMODE(cli.session_file.stat().st_mode) == 0o600


def test_an_expired_password_is_renewed_with_password_change(cli, logged_in, server):
    server.clock.advance(timedelta(days=91))

    refused = cli.run("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: your password expired on "), refused.stderr
    assert "ChangePassword" not in refused.stderr
    assert f"fittrack password change --username {logged_in}" in refused.stderr

    new_password = "a brand new passphrase"
    cli.ok("password", "change", "--username", logged_in, "--password-stdin", stdin=f"{PASSWORD}\n{new_password}\n")
    assert "Logged in" in cli.ok("login", logged_in, "--password-stdin", stdin=new_password + "\n")


def test_logout_ends_the_session_on_the_server_too(cli, logged_in, stubs):
    access_token = json.loads(cli.session_file.read_text())["access_token"]

    cli.ok("logout")

    assert not cli.session_file.exists()
    error = rpc_error(
        lambda: stubs.accounts.GetProfile(
            account_pb2.GetProfileRequest(), metadata=[("authorization", f"Bearer {access_token}")]
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_met_goal_notifies_and_the_notification_can_be_marked_read(cli, logged_in, tmp_path):
    today = utc_today().isoformat()
    cli.ok("goals", "add", "--metric", "active-minutes", "--period", "daily", "--target", "2")
    rows = [(f"{today}T00:00:00Z", "active_minutes", 1), (f"{today}T00:01:00Z", "active_minutes", 1)]
    cli.ok("readings", "push", str(write_csv(tmp_path / "active.csv", rows)))

    unread = eventually(lambda: cli.json("notifications", "list", "--unread"), lambda r: r["unread_count"] == 1)
    (notification,) = unread["notifications"]
    assert notification["kind"] == "NOTIFICATION_KIND_GOAL_MET"

    assert "Marked 1" in cli.ok("notifications", "read", notification["notification_id"])
    assert cli.json("notifications", "list", "--unread")["notifications"] == []


def test_notifications_watch_prints_a_goal_met_as_it_happens(cli, logged_in, tmp_path):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
    watcher = subprocess.Popen(
        cli.argv("--json", "notifications", "watch"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=cli.env(),
    )
    try:
        # The banner comes once the server has the subscription in place, so nothing after it is missed.
        assert "Watching" in read_line(watcher.stderr)
        cli.ok("readings", "push", str(write_csv(tmp_path / "steps.csv", [(f"{utc_today()}T00:00:00Z", "steps", 150)])))
        notification = json.loads(read_line(watcher.stdout))
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    assert notification["kind"] == "NOTIFICATION_KIND_GOAL_MET"
    assert "steps" in notification["title"]
