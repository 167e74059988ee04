"""What a new user meets in their first hour with `fittrack`: mistakes answered with messages that say what to
do, no traps, and output that reads well. Each test here failed before the fix it covers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import timedelta

import grpc
import pytest

from generated.fittrack.v1 import account_pb2
from tests.cli_runner import REPO_ROOT, Cli, in_a_terminal, read_line, table, utc_today, write_csv
from tests.support import PASSWORD, RunningServer, eventually

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Select Graphic Rendition codes that set a colour (foreground, background, bright, 256 and true colour).
COLOUR = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9]+)*m")


def assert_explained(result: subprocess.CompletedProcess, exit_code: int, *phrases: str) -> None:
    """The command failed with `exit_code`, said so in an `error:` line with each phrase, and showed no traceback."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def access_still_works(stubs, token: str) -> bool:
    try:
        stubs.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=[("authorization", f"Bearer {token}")])
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        return False


# --- downloads ---


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
        (("-o", "nov.xlsx"), "cannot write a xlsx file: reports come as csv or pdf"),
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


# --- sessions ---


def test_a_login_whose_session_cannot_be_stored_is_refused_before_it_reaches_the_server(cli, stubs, new_username):
    username = new_username("nowhere")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))
    cli.config_home.parent.mkdir(parents=True, exist_ok=True)
    cli.config_home.write_text("a file where the config directory should be")

    result = cli.run("login", username, "--password-stdin", stdin=PASSWORD + "\n")

    assert_explained(result, 1, "cannot write the session to", "XDG_CONFIG_HOME")


def test_logging_in_as_someone_else_ends_the_previous_session_on_the_server(cli, logged_in, stubs, new_username):
    first_token = json.loads(cli.session_file.read_text())["access_token"]
    other = new_username("other")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=other, password=PASSWORD))

    cli.ok("login", other, "--password-stdin", stdin=PASSWORD + "\n")

    assert not access_still_works(stubs, first_token)
    assert json.loads(cli.session_file.read_text())["username"] == other


def test_logging_in_again_ends_the_replaced_session(cli, logged_in, stubs):
    first_token = json.loads(cli.session_file.read_text())["access_token"]
    cli.ok("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")
    second_token = json.loads(cli.session_file.read_text())["access_token"]
    assert not access_still_works(stubs, first_token)
    assert access_still_works(stubs, second_token)


def test_logout_while_the_server_is_down_keeps_the_session_and_logout_local_forgets_it(server_config, clock, tmp_path):
    server = RunningServer(server_config, clock)
    cli = Cli(server.address, tmp_path / "config")
    cli.ok("register", "leaver", "--password-stdin", "--time-zone", "UTC", stdin=PASSWORD + "\n")
    cli.ok("login", "leaver", "--password-stdin", stdin=PASSWORD + "\n")
    server.stop()

    refused = cli.run("logout")
    assert_explained(refused, 1, "cannot reach", "fittrack logout --local")
    assert cli.session_file.exists()

    forgot = cli.run("logout", "--local")
    assert forgot.returncode == 0 and "Forgot the session of leaver" in forgot.stdout
    assert "stays valid on the server" in forgot.stderr
    assert not cli.session_file.exists()


# --- addresses and servers that are not there ---


@pytest.mark.parametrize(
    ("address", "phrase"),
    [
        ("127.0.0.1:99999", "'127.0.0.1:99999' has no valid port; a port is a number from 1 to 65535"),
        ("nonsense", "'nonsense' is not a server address; give HOST:PORT"),
    ],
)
def test_a_server_address_grpc_would_misread_is_refused(tmp_path, address, phrase):
    result = Cli(address, tmp_path / "config").run("register", "someone", "--password-stdin", stdin="x" * 12 + "\n")
    assert_explained(result, 2, phrase)


def test_grpcs_against_a_plaintext_server_says_it_does_not_speak_tls(server, tmp_path):
    result = Cli(f"grpcs://{server.address}", tmp_path / "config").run(
        "register", "tls-user", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert_explained(result, 1, f"the server at grpcs://{server.address} does not speak TLS", "drop grpcs://")
    assert "make run" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # the error and its hint; none of gRPC's own log lines


def test_a_server_that_is_not_running_is_named_with_how_to_start_one(tmp_path):
    from tests.e2e.test_server import free_port

    address = f"127.0.0.1:{free_port()}"
    result = Cli(address, tmp_path / "config").run("register", "nobody", "--password-stdin", stdin=PASSWORD + "\n")
    assert_explained(result, 1, f"no Fittrack server answers at {address}", "make run")


# --- words and numbers ---


def test_metric_names_are_read_the_way_people_type_them(cli, logged_in, tmp_path):
    today = utc_today()
    rows = [(f"{today}T00:00:00Z", "HEART_RATE", 70), (f"{today}T00:01:00Z", "Heart-Rate", 80)]
    cli.ok("readings", "push", str(write_csv(tmp_path / "hr.csv", rows)))
    for spelling in ("heart_rate", "heart-rate", "Heart Rate"):
        view = eventually(lambda s=spelling: cli.json("metrics", "view", s), lambda v: v["days_with_data"] == 1)
        assert view["metric"] == "METRIC_KIND_HEART_RATE"
    refused = cli.run("metrics", "view", "pulse")
    assert refused.returncode == 2
    assert "unknown metric 'pulse'; use one of steps, calories, distance, active_minutes, heart_rate" in refused.stderr


def test_a_view_shows_whole_steps_km_for_distance_and_no_data_instead_of_zero(cli, logged_in, tmp_path):
    today, yesterday = utc_today(), utc_today() - timedelta(days=1)
    rows = [
        (f"{yesterday}T10:00:00Z", "steps", 101),
        (f"{today}T10:00:00Z", "steps", 100),
        (f"{today}T10:01:00Z", "distance", 1234.5),
    ]
    cli.ok("readings", "push", str(write_csv(tmp_path / "r.csv", rows)))
    eventually(lambda: cli.json("metrics", "view", "distance"), lambda v: v["total"] == 1234.5)

    steps = cli.ok("metrics", "view", "steps", "--from", str(yesterday - timedelta(days=1)), "--to", str(today))
    assert "average 100 steps per day with data (2 of 3 days with data)" in steps  # 100.5 shown whole
    assert steps.splitlines()[-2] == "·██"  # the day without data is a dot, not the lowest bar
    assert "total 1.23 km" in cli.ok("metrics", "view", "distance")
    assert "No heart rate data in these days." in cli.ok("metrics", "view", "heart_rate", "--week")


def test_goals_list_is_a_table_with_a_header_and_distance_targets_take_units(cli, logged_in):
    cli.ok("goals", "add", "--metric", "distance", "--period", "daily", "--target", "5km")
    cli.ok("goals", "add", "--metric", "Steps", "--period", "weekly", "--target", "70,000")
    cli.ok("goals", "add", "--metric", "distance", "--period", "weekly", "--target", "30")  # km, as shown
    rows = table(cli.ok("goals", "list"))
    assert [(r["PERIOD"], r["METRIC"], r["TARGET"]) for r in rows] == [
        ("daily", "distance", "5 km"),
        ("weekly", "steps", "70,000 steps"),
        ("weekly", "distance", "30 km"),
    ]
    goals = cli.json("goals", "list")["goals"]
    assert [goal["target"] for goal in goals] == [5000, 70000, 30000]
    cli.ok("goals", "update", goals[0]["goal_id"], "--target", "7500m")
    assert cli.json("goals", "list")["goals"][0]["target"] == 7500


def test_counts_in_messages_are_singular_or_plural_as_english_wants(cli, logged_in, tmp_path):
    today = utc_today()
    pushed = cli.ok("readings", "push", str(write_csv(tmp_path / "one.csv", [(f"{today}T00:00:00Z", "steps", 5)])))
    assert "Uploaded 1 reading in 1 batch," in pushed
    simulated = cli.ok("simulate", "day", "--date", str(today - timedelta(days=1)))
    assert "sent from the first batch" in simulated and "batch 0" not in simulated


def test_profile_times_are_shown_in_the_profiles_own_time_zone(cli, new_username, stubs):
    username = new_username("paris")
    stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=PASSWORD, profile=account_pb2.ProfileFields(time_zone="Pacific/Kiritimati")
        )
    )
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    created = cli.json("profile", "show")["created_at"]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    expected = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(ZoneInfo("Pacific/Kiritimati"))
    shown = cli.run("profile", "show").stdout
    # UTC+14: the machine's zone (UTC here) would show another day or hour.
    assert re.search(rf"member since\s+{expected:%Y-%m-%d %H:%M}", shown), shown


def test_a_weekly_report_marks_days_without_data_and_counts_one_day_as_one(cli, logged_in, tmp_path):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
    monday = utc_today() - timedelta(days=utc_today().weekday() + 7)  # last week's Monday
    rows = [(f"{monday + timedelta(days=6)}T10:00:00Z", "steps", 150)]
    cli.ok("readings", "push", str(write_csv(tmp_path / "r.csv", rows)))
    eventually(lambda: cli.json("report", "view", "--date", str(monday)), lambda r: r["metrics"][0]["total"] == 150)

    shown = cli.ok("report", "view", "--date", str(monday))
    steps = shown.split("\nsteps\n")[1]
    assert re.search(r"days\s+······█", steps)
    assert "streak 1 day\n" in steps
    assert "heart_rate (bpm)\n  no data this week" in shown


# --- readings files and simulated days ---


def test_a_csv_header_in_any_case_or_quoted_is_skipped(cli, logged_in, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(f'"Time","Metric","Value"\n{utc_today()}T00:00:00Z,steps,12\n')
    assert "Uploaded 1 reading" in cli.ok("readings", "push", str(path))


def test_a_csv_reading_in_the_future_is_named_by_file_and_line(cli, logged_in, tmp_path):
    later = utc_today() + timedelta(days=3)
    path = write_csv(
        tmp_path / "future.csv", [(f"{utc_today()}T00:00:00Z", "steps", 1), (f"{later}T00:00Z", "steps", 2)]
    )
    assert_explained(cli.run("readings", "push", str(path)), 1, f"{path}:3: time", "is in the future")


def test_simulating_a_day_before_2000_is_refused_before_anything_is_sent(cli, logged_in):
    result = cli.run("simulate", "day", "--date", "1900-01-01")
    assert_explained(result, 1, "1900-01-01 is before 2000-01-01")
    assert "batch" not in result.stderr


# --- colour ---


def _through_a_terminal(cli: Cli, *args: str, **env: str) -> str:
    result, drawn = in_a_terminal(cli.argv(*args), {**cli.env(), **env})
    assert result.returncode == 0, drawn
    return drawn


def test_colour_is_used_on_a_terminal_unless_no_color_is_set_and_never_in_a_pipe(cli, logged_in):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
    assert COLOUR.search(_through_a_terminal(cli, "goals", "list", TERM="xterm-256color"))
    # NO_COLOR takes the colours away; bold headers may stay (no-color.org is about colour only).
    assert not COLOUR.search(_through_a_terminal(cli, "goals", "list", TERM="xterm-256color", NO_COLOR="1"))
    assert not ANSI.search(cli.ok("goals", "list"))


# --- notifications watch ---


def test_notifications_watch_reconnects_after_a_server_restart_and_prints_what_came_meanwhile(tmp_path):
    from tests.e2e.test_server import answers_health, free_port, start_process

    port = free_port()
    address = f"127.0.0.1:{port}"
    cli = Cli(address, tmp_path / "config")

    def start():
        process = start_process([sys.executable, "-m", "server"], tmp_path, port)
        eventually(lambda: answers_health(address), bool, timeout=30, interval=0.1)
        return process

    server = start()
    watcher = None
    try:
        cli.ok("register", "watcher", "--password-stdin", "--time-zone", "UTC", stdin=PASSWORD + "\n")
        cli.ok("login", "watcher", "--password-stdin", stdin=PASSWORD + "\n")
        cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
        watcher = subprocess.Popen(
            cli.argv("--json", "notifications", "watch"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=cli.env(),
        )  # fmt: skip
        assert "Watching" in read_line(watcher.stderr)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        assert "reconnecting" in read_line(watcher.stderr)
        server = start()
        cli.ok("readings", "push", str(write_csv(tmp_path / "s.csv", [(f"{utc_today()}T00:00:00Z", "steps", 150)])))
        # At some hours the evaluator's nudge (behind the goal) comes first: what came meanwhile includes both.
        kinds = []
        while "NOTIFICATION_KIND_GOAL_MET" not in kinds and len(kinds) < 3:
            kinds.append(json.loads(read_line(watcher.stdout, timeout=30))["kind"])
        assert kinds[-1] == "NOTIFICATION_KIND_GOAL_MET", kinds
        assert watcher.poll() is None  # still watching
    finally:
        if watcher is not None:
            watcher.kill()
            watcher.communicate(timeout=10)
        server.kill()
        server.wait(timeout=10)


def test_a_refused_token_after_the_session_ended_is_unauthenticated_with_a_hint(cli, logged_in, stubs):
    token = json.loads(cli.session_file.read_text())["access_token"]
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=[("authorization", f"Bearer {token}")])
    assert_explained(cli.run("goals", "list"), 1, "UNAUTHENTICATED", f"fittrack login {logged_in}")


def test_status_says_who_is_logged_in_where_and_checks_the_session_with_the_server(cli, logged_in, stubs):
    shown = cli.ok("status")
    assert shown.startswith(f"Logged in to {cli.address} as {logged_in}.\n")
    assert re.search(r"connection\s+plaintext\n", shown)
    token = json.loads(cli.session_file.read_text())["access_token"]
    stubs.accounts.Logout(account_pb2.LogoutRequest(), metadata=[("authorization", f"Bearer {token}")])
    assert_explained(cli.run("status"), 1, "UNAUTHENTICATED", f"fittrack login {logged_in}")
    cli.ok("logout", "--local")
    assert_explained(cli.run("status"), 2, "you are not logged in", "fittrack login USERNAME")


# --- what an independent review of the first version found ---


def test_a_damaged_session_file_is_named_and_logging_in_again_replaces_it(cli, logged_in):
    cli.session_file.write_text("{not json")
    assert_explained(cli.run("goals", "list"), 2, f"the session file {cli.session_file} cannot be used", "login")
    assert "Logged in as" in cli.ok("login", logged_in, "--password-stdin", stdin=PASSWORD + "\n")
    stored = json.loads(cli.session_file.read_text())
    # A key a newer fittrack wrote is ignored rather than locking this one out.
    cli.session_file.write_text(json.dumps({**stored, "added_by_a_newer_version": 1}))
    assert "No goals yet" in cli.ok("goals", "list")
    cli.session_file.write_text(json.dumps({**stored, "access_token_expires_at": "2026-01-01T00:00:00"}))
    assert_explained(cli.run("goals", "list"), 2, "access_token_expires_at has no UTC offset")
    cli.ok("logout", "--local")
    assert not cli.session_file.exists()


def test_a_refresh_never_takes_over_another_users_session_stored_meanwhile(cli, logged_in, server, stubs, new_username):
    from argparse import Namespace

    from clients.cli.connection import Client
    from clients.cli.session import Session

    alice = json.loads(cli.session_file.read_text())
    bob = new_username("bob")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=bob, password=PASSWORD))
    cli.ok("login", bob, "--password-stdin", stdin=PASSWORD + "\n")  # ends alice's session on the server
    os.environ["XDG_CONFIG_HOME"] = str(cli.config_home)
    try:
        client = Client(
            Namespace(server=server.address, timeout=5, tls=False, ca_file=None, cert_file=None, key_file=None)
        )
        # A process still holding alice's session, whose access token has run out, as a watch would.
        client.session = Session(**{**alice, "access_token_expires_at": "2000-01-01T00:00:00+00:00"})
        server.clock.advance(timedelta(hours=2))
        with pytest.raises(grpc.RpcError) as refused:
            client.unary(client.accounts.GetProfile, account_pb2.GetProfileRequest())
        client.close()
    finally:
        del os.environ["XDG_CONFIG_HOME"]
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert json.loads(cli.session_file.read_text())["username"] == bob


def test_a_download_into_a_fifo_or_through_a_symlink_keeps_them_what_they_are(cli, logged_in, tmp_path):
    import stat
    import threading

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


def test_goal_ids_are_shown_whole_on_a_narrow_terminal(cli, logged_in):
    cli.ok("goals", "add", "--metric", "active_minutes", "--period", "weekly", "--target", "150", "--no-notify")
    (goal,) = cli.json("goals", "list")["goals"]
    shown = _through_a_terminal(cli, "goals", "list", COLUMNS="60", TERM="xterm")
    assert goal["goal_id"] in ANSI.sub("", shown)


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])
def test_today_means_today_where_the_account_lives_not_on_this_machine(cli, stubs, new_username, zone):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    username = new_username("far")
    stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=PASSWORD, profile=account_pb2.ProfileFields(time_zone=zone)
        )
    )
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    view = cli.json("metrics", "view", "steps", "--from", "yesterday", "--to", "today")
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    assert (view["end"], view["start"]) == (
        {"year": today.year, "month": today.month, "day": today.day},
        {"year": (today - timedelta(1)).year, "month": (today - timedelta(1)).month, "day": (today - timedelta(1)).day},
    )


def test_a_password_change_from_stdin_asks_for_both_lines_at_once(cli, logged_in):
    result = cli.run("password", "change", "--password-stdin", stdin=PASSWORD + "\n")
    assert_explained(result, 1, "--password-stdin expects 2 non-empty lines on stdin")


def test_a_password_prompt_without_a_terminal_says_to_pipe_it(cli, logged_in):
    result = subprocess.run(
        cli.argv("login", logged_in), input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO_ROOT,
        env=cli.env(), timeout=60, start_new_session=True,  # no controlling terminal, as under cron or CI
    )  # fmt: skip
    assert_explained(result, 1, "there is no terminal to ask for the password on", "--password-stdin")
    assert "GetPassWarning" not in result.stderr
