"""ops/systemd/: the units an operator installs to run each process role, and the environment file they read.

There is no systemd running here, so the units are checked as systemd would load them (`systemd-analyze
verify`, with ExecStart pointed at this checkout's installed console scripts) and read for what an operator
relies on: the right program per role, a graceful stop longer than the shutdown grace, restarts, a dedicated
user, hardening, and metrics ports that ops/prometheus/prometheus.yml scrapes.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from fittrack.app.config import Config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "ops" / "systemd"
ENV_EXAMPLE = UNITS / "fittrack.env.example"
INSTALLED_BIN = "/opt/fittrack/bin/"
ROLES = {
    "server": "fittrack-server.service",
    "persister": "fittrack-persister@.service",
    "dispatcher": "fittrack-dispatcher.service",
    "evaluator": "fittrack-evaluator.service",
}
# Instances of the persister template the checks below start: as README.md's install steps do.
PERSISTER_INSTANCES = ("1", "2")


def unit_file(path: Path, instance: str = "") -> dict[str, list[str]]:
    """`Section.Key` -> its values in order (systemd allows a key several times), with %i expanded."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip().replace("%i", instance))
    return values


def environment_file(path: Path) -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile= reads them (comments and blank lines skipped)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


def role_units() -> list[tuple[str, str, dict[str, list[str]]]]:
    """(role, unit name, settings) for every unit that runs, the persister once per instance."""
    found = []
    for role, name in ROLES.items():
        if "@" in name:
            for instance in PERSISTER_INSTANCES:
                found.append((role, name.replace("@", f"@{instance}"), unit_file(UNITS / name, instance)))
        else:
            found.append((role, name, unit_file(UNITS / name)))
    return found


def template_of(name: str) -> Path:
    """The file a unit comes from: fittrack-persister@2.service from fittrack-persister@.service."""
    return UNITS / re.sub(r"@[^.]*\.", "@.", name)


def console_scripts() -> set[str]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    entries = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    return {entry.split("=")[0].strip() for entry in entries}


def process_environment(unit: dict[str, list[str]]) -> dict[str, str]:
    """What the process sees: the unit's Environment=, then its files (which override it, as in systemd)."""
    env = {}
    for assignment in unit["Service.Environment"]:
        name, _, value = assignment.partition("=")
        env[name] = value
    for file in unit["Service.EnvironmentFile"]:
        if file == "/etc/fittrack/fittrack.env":
            env.update(environment_file(ENV_EXAMPLE))
        else:
            assert file.startswith("-"), f"{file}: only the shared file may be required"
    return env


def test_the_units_cover_every_process_role_and_nothing_else():
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted(ROLES.values())


def test_systemd_accepts_every_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make tools` installs Debian's systemd package, which has it"
    # The units run what `pip install` put in /opt/fittrack/bin; here that is this checkout's venv, so
    # systemd-analyze also finds each ExecStart installed and executable.
    installed = str(Path(sys.executable).parent) + "/"
    for _, name, _ in role_units():
        text = template_of(name).read_text()
        assert INSTALLED_BIN in text
        (tmp_path / name).write_text(text.replace(INSTALLED_BIN, installed))
        verified = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True, timeout=60
        )
        # Unknown keys and unparsable values are only warnings to systemd (exit 0): any output fails.
        assert (verified.returncode, verified.stdout + verified.stderr) == (0, ""), name


def test_each_unit_runs_its_roles_console_script_as_the_fittrack_user():
    scripts = console_scripts()
    for role, name, unit in role_units():
        (command,) = unit["Service.ExecStart"]
        assert command == f"{INSTALLED_BIN}fittrack-{role}", name
        assert command.removeprefix(INSTALLED_BIN) in scripts, f"{name}: {command} is not a console script"
        assert unit["Service.User"] == ["fittrack"] and unit["Service.Group"] == ["fittrack"], name
        assert unit["Install.WantedBy"] == ["multi-user.target"], name


def test_each_unit_stops_gracefully_after_the_shutdown_grace_and_restarts_on_failure():
    grace = Config.from_env(environment_file(ENV_EXAMPLE), profile="production").shutdown_grace_seconds
    assert grace > 0
    for _, name, unit in role_units():
        assert unit["Service.KillSignal"] == ["SIGTERM"], name
        (timeout,) = unit["Service.TimeoutStopSec"]
        assert float(timeout) > grace, f"{name}: TimeoutStopSec={timeout} would cut the {grace} s grace short"
        assert unit["Service.Restart"] == ["on-failure"], name
        # A process that refuses its settings exits 2: restarting it in a loop would only fill the journal.
        assert unit["Service.RestartPreventExitStatus"] == ["2"], name


def test_each_unit_is_hardened():
    required = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
    }
    for _, name, unit in role_units():
        for key, value in required.items():
            assert unit.get(f"Service.{key}") == [value], f"{name}: {key}={value} expected"


def test_the_example_environment_starts_every_role_in_the_production_profile():
    for _, name, unit in role_units():
        env = process_environment(unit)
        # As each entrypoint reads it (fittrack/app/process.py; the server reads FITTRACK_PROFILE from it).
        config = Config.from_env(env, profile="production")
        assert Config.from_env(env).profile == "production", name
        assert config.kafka_bootstrap and config.pg_dsn and config.mongo_uri, name


def test_the_example_environment_leaves_each_process_its_own_metrics_port():
    shared = environment_file(ENV_EXAMPLE)
    # The file overrides the units' Environment=: one FITTRACK_METRICS_LISTEN there would give every
    # process on the host the same port.
    assert "FITTRACK_METRICS_LISTEN" not in shared
    addresses = [process_environment(unit)["FITTRACK_METRICS_LISTEN"] for _, _, unit in role_units()]
    assert len(set(addresses)) == len(addresses), addresses


def test_prometheus_scrapes_each_role_at_the_port_its_unit_gives_it():
    scrape = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        job["job_name"]: {target.rsplit(":", 1)[1] for config in job["static_configs"] for target in config["targets"]}
        for job in scrape["scrape_configs"]
    }
    exported: dict[str, set[str]] = {}
    for role, _, unit in role_units():
        port = process_environment(unit)["FITTRACK_METRICS_LISTEN"].rsplit(":", 1)[1]
        exported.setdefault(f"fittrack-{role}", set()).add(port)
    assert scraped == exported


def test_the_example_environment_holds_no_real_secret():
    shared = environment_file(ENV_EXAMPLE)
    assert shared["FITTRACK_TOKEN_SECRET"] == ""
    for name, value in shared.items():
        for address in value.split(","):
            if "://" in address:
                password = urlsplit(address).password
                assert password in (None, "CHANGE-ME"), f"{name} carries a password"
    assert not any(re.search(r"secret|password|key", name, re.I) and value for name, value in shared.items())


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_readme_installs_each_role(role):
    operating = (ROOT / "README.md").read_text().split("## Operating it", 1)[1].split("\n## ", 1)[0]
    assert ROLES[role].replace("@.service", "@") in operating
