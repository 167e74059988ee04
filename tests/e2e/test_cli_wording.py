"""What `fittrack` says when something goes wrong, and how it writes times, amounts and names: in the words a
person uses (and the CLI accepts), never in gRPC's or the wire's."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from fittrack.generated.v1 import account_pb2
from tests.cli_runner import Cli, utc_today, write_csv
from tests.e2e.test_cli_first_hour import assert_explained
from tests.support import PASSWORD, eventually

CODE_NAMES = ("INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "UNAUTHENTICATED", "FAILED_PRECONDITION")


def log_in_living_in(cli: Cli, stubs, new_username, zone: str) -> str:
    username = new_username("zoned")
    stubs.accounts.Register(
        account_pb2.RegisterRequest(
            username=username, password=PASSWORD, profile=account_pb2.ProfileFields(time_zone=zone)
        )
    )
    cli.ok("login", username, "--password-stdin", stdin=PASSWORD + "\n")
    return username


def assert_no_code_names(stderr: str) -> None:
    assert not any(name in stderr for name in CODE_NAMES), stderr


# --- the server's refusals, in words ---


def test_a_refusal_is_the_servers_words_without_grpcs_code_name(cli, logged_in, stubs, new_username):
    too_long = cli.run("metrics", "view", "steps", "--from", "2026-01-01", "--to", "2026-03-01")
    assert_explained(too_long, 1, "at most 31")
    assert_no_code_names(too_long.stderr)

    wrong = Cli(cli.address, cli.config_home.with_name("elsewhere")).run(
        "login", logged_in, "--password-stdin", stdin="not the password\n"
    )
    assert_explained(wrong, 1, "unknown username or wrong password")
    assert_no_code_names(wrong.stderr)
    assert "hint:" not in wrong.stderr  # no session here to log in to again


def test_a_second_goal_for_the_same_metric_and_period_hints_the_update_command_with_its_id(cli, logged_in):
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "8000")
    (goal,) = cli.json("goals", "list")["goals"]

    result = cli.run("goals", "add", "--metric", "steps", "--period", "daily", "--target", "9,000")

    assert_explained(result, 1, f"you already have a daily steps goal, {goal['goal_id']} (8,000 steps)")
    assert f"hint: change it with `fittrack goals update {goal['goal_id']} --target 9,000`" in result.stderr
    assert_no_code_names(result.stderr)


@pytest.mark.parametrize(
    "command",
    [
        ("goals", "update", "nosuchid", "--active", "no"),
        ("goals", "delete", "nosuchid"),
        ("goals", "progress", "nosuchid"),
    ],
)
def test_a_goal_id_that_is_not_the_users_hints_how_to_list_them(cli, logged_in, command):
    result = cli.run(*command)
    assert_explained(result, 1, "you have no goal 'nosuchid'", "hint: list them with `fittrack goals list --all`")
    assert_no_code_names(result.stderr)


# --- amounts, as typed ---


@pytest.mark.parametrize(
    ("metric", "period", "target", "typed", "limit"),
    [
        ("distance", "daily", "1000km", "1,000 km", "500 km"),
        ("distance", "daily", "600000m", "600,000 m", "500,000 m"),
        ("steps", "weekly", "2,000,000", "2,000,000 steps", "1,400,000 steps"),
    ],
)
def test_a_goal_target_beyond_the_limit_is_refused_before_sending_in_the_unit_it_was_typed_in(
    server, tmp_path, metric, period, target, typed, limit
):
    # No session, so the check is the CLI's own: the server is never asked.
    result = Cli(server.address, tmp_path / "config").run(
        "goals", "add", "--metric", metric, "--period", period, "--target", target
    )
    assert_explained(
        result, 2, f"a {period} {metric} target of {typed} is beyond what a person can do; give at most {limit}"
    )


# --- times, in the account's zone and labelled ---


def test_notification_and_upload_times_are_shown_in_the_accounts_zone_with_its_name(cli, stubs, new_username, tmp_path):
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: this machine's zone (UTC) would show another hour
    log_in_living_in(cli, stubs, new_username, "Pacific/Kiritimati")
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
    local_midnight = datetime.now(UTC).astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    moment = local_midnight.astimezone(UTC)
    pushed = cli.ok(
        "readings", "push", str(write_csv(tmp_path / "r.csv", [(f"{moment:%Y-%m-%dT%H:%MZ}", "steps", 150)]))
    )
    assert f"{local_midnight:%Y-%m-%d} 00:00 +14 to {local_midnight:%Y-%m-%d} 00:00 +14." in pushed, pushed

    listed = eventually(lambda: cli.json("notifications", "list"), lambda r: r["notifications"])
    created = datetime.fromisoformat(listed["notifications"][0]["created_at"].replace("Z", "+00:00"))
    shown = cli.ok("notifications", "list")
    assert f"{created.astimezone(zone):%Y-%m-%d %H:%M} +14  " in shown, shown


def test_profile_times_carry_the_zones_name_too(cli, stubs, new_username):
    log_in_living_in(cli, stubs, new_username, "Europe/Paris")
    shown = cli.ok("profile", "show")
    assert re.search(r"member since\s+\d{4}-\d\d-\d\d \d\d:\d\d CES?T\n", shown), shown


# --- the earliest reading is an instant ---


def test_simulating_the_first_day_of_2000_east_of_utc_is_refused_before_anything_is_sent(cli, stubs, new_username):
    log_in_living_in(cli, stubs, new_username, "Europe/Paris")
    result = cli.run("simulate", "day", "--date", "2000-01-01")
    assert_explained(
        result, 1, "2000-01-01 in Europe/Paris starts at 1999-12-31T23:00Z, before 2000-01-01T00:00Z", "2000-01-02"
    )
    assert "rejected" not in result.stderr and result.stdout == ""


def test_a_csv_reading_before_2000_in_utc_is_named_by_file_and_line_though_its_local_date_is_2000(
    cli, logged_in, tmp_path
):
    path = write_csv(
        tmp_path / "early.csv", [(f"{utc_today()}T00:00:00Z", "steps", 1), ("2000-01-01T00:30+01:00", "steps", 2)]
    )
    result = cli.run("readings", "push", str(path))
    assert_explained(result, 1, f"{path}:3: time 2000-01-01T00:30+01:00 is before 2000-01-01T00:00Z")


# --- JSON in the CLI's words ---


def test_json_names_metrics_and_periods_as_the_cli_does(cli, logged_in, tmp_path):
    cli.ok("goals", "add", "--metric", "active-minutes", "--period", "weekly", "--target", "150")
    (goal,) = cli.json("goals", "list")["goals"]
    assert (goal["metric"], goal["period"]) == ("active_minutes", "weekly")
    assert cli.json("metrics", "view", "Heart Rate")["metric"] == "heart_rate"
    report = cli.json("report", "view")
    assert [section["metric"] for section in report["metrics"]] == [
        "steps", "calories", "distance", "active_minutes", "heart_rate"
    ]  # fmt: skip
    progress = cli.json("goals", "progress", goal["goal_id"])
    assert progress["goal"]["metric"] == "active_minutes"


# --- usage mistakes ---


def test_a_usage_hint_always_reads_see_the_commands_help(cli, logged_in):
    for command in (("profile", "update"), ("goals", "update", "x")):
        result = cli.run(*command)
        assert_explained(result, 2, "nothing to update")
        assert result.stderr.splitlines()[-1] == f"hint: see `fittrack {' '.join(command[:2])} --help`"


def test_a_misspelt_option_under_a_subcommand_names_the_option_meant_and_that_subcommands_help(tmp_path):
    cli = Cli("127.0.0.1:9", tmp_path / "config")  # never reached
    result = cli.run("goals", "add", "--metric", "steps", "--period", "daily", "--target", "5", "--no-notfy")
    assert_explained(result, 2, "unrecognized arguments: --no-notfy (did you mean --no-notify?)")
    assert result.stderr.splitlines()[-1] == "hint: see `fittrack goals add --help`"
    # Never read as the start of another option: --form is not --format.
    form = cli.run("report", "download", "--form", "2026-11-01", "--to", "2026-11-30")
    assert_explained(form, 2, "--from")
    assert "--format" not in form.stderr.splitlines()[0]
    assert form.stderr.splitlines()[-1] == "hint: see `fittrack report download --help`"
