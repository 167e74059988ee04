"""A real Prometheus (Debian's, installed by `make tools`) scraping the production profile: a server and a
persister export on FITTRACK_METRICS_LISTEN, a device syncs, and Prometheus's HTTP API reports the readings
the test sent as accepted and the persisters' lag back to zero once they are stored. The same Prometheus
loads ops/prometheus/alerts.yml and evaluates every rule and dashboard query, as an operator's would.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fittrack.app.config import Config
from fittrack.clients.activity import STEPS
from fittrack.clients.sync_call import sync_readings
from tests.operations import ALERTS, alert_rules, dashboard_expressions
from tests.production import ProductionStack
from tests.prometheus import free_port
from tests.support import Clock, RunningServer, Stubs, eventually, local_midnight, register_and_login, server_settings

pytestmark = pytest.mark.production

BATCHES = 3
BATCH_SIZE = 40
PARTITIONS = 4  # the stack's FITTRACK_READINGS_PARTITIONS


class RunningPrometheus:
    """`prometheus` on a free loopback port, scraping `jobs` every second, its data in `directory`."""

    def __init__(self, directory: Path, jobs: dict[str, list[str]], rule_files: list[Path]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: `make tools` installs Debian's prometheus package"
        directory.mkdir(parents=True, exist_ok=True)
        for rule_file in rule_files:
            shutil.copy(rule_file, directory / rule_file.name)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [rule_file.name for rule_file in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "prometheus.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self._ready, bool, timeout=30, interval=0.2)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def api(self, path: str, **parameters: str) -> dict:
        """The `data` of an API answer; fails the test on an error status, with Prometheus's message."""
        query = f"?{urllib.parse.urlencode(parameters)}" if parameters else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        assert answer["status"] == "success", f"{path} {parameters}: {answer.get('errorType')}: {answer.get('error')}"
        return answer["data"]

    def query(self, expression: str) -> list[dict]:
        return self.api("query", query=expression)["result"]

    def value(self, expression: str) -> float | None:
        """The value of an expression that yields one series; None while it yields none."""
        result = self.query(expression)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def stack():
    created = ProductionStack.create("prom")
    yield created
    created.destroy()


@pytest.fixture
def exporting(stack, tmp_path):
    """A server and a persister of the stack, each exporting on its own loopback port."""
    config = Config(**server_settings(tmp_path, metrics_listen="127.0.0.1:0", **stack.config_values()))
    server = RunningServer(config, Clock())
    persister_port = free_port()
    stack.start_persister(FITTRACK_METRICS_LISTEN=f"127.0.0.1:{persister_port}")
    yield (
        server,
        {
            "fittrack-server": [f"127.0.0.1:{server.server.metrics.port}"],
            "fittrack-persister": [f"127.0.0.1:{persister_port}"],
        },
    )
    server.stop()
    stack.stop_persisters()


@pytest.fixture
def prometheus(exporting, tmp_path):
    _, jobs = exporting
    running = RunningPrometheus(tmp_path / "prometheus", jobs, [ALERTS])
    yield running
    running.stop()


def test_prometheus_counts_the_readings_a_device_synced_and_sees_the_persisters_catch_up(exporting, prometheus):
    server, jobs = exporting
    eventually(
        lambda: {item["metric"]["job"]: item["value"][1] for item in prometheus.query("up")},
        lambda up: up == {job: "1" for job in jobs},
        timeout=30,
        interval=0.5,
    )
    stubs = Stubs.connect(server.address)
    try:
        user = register_and_login(stubs, f"prom-{secrets.token_hex(4)}")
        midnight = local_midnight(lambda: datetime.now(UTC), "UTC")
        readings = [(STEPS, midnight + 60 * minute, float(10 + minute % 30)) for minute in range(BATCHES * BATCH_SIZE)]
        synced = sync_readings(stubs.metrics, readings, "watch-1", user.auth, batch_size=BATCH_SIZE, timeout=60)
    finally:
        stubs.channel.close()
    assert (synced.readings_accepted, synced.batches_accepted) == (len(readings), BATCHES), synced.rejections

    accepted = eventually(
        lambda: prometheus.value('sum(fittrack_ingest_readings_total{outcome="accepted"})'),
        lambda value: value == len(readings),
        timeout=60,
        interval=0.5,
    )
    assert accepted == len(readings)
    assert prometheus.value('sum(fittrack_ingest_batches_total{outcome="accepted"})') == BATCHES

    # Stored: the persister has consumed and committed one record per batch, and its lag, exported per
    # partition it holds, sums to zero.
    persisted = eventually(
        lambda: (
            prometheus.value('sum(fittrack_kafka_consumed_records_total{role="persister"})'),
            prometheus.value('count(fittrack_kafka_consumer_lag{role="persister"})'),
            prometheus.value('sum(fittrack_kafka_consumer_lag{role="persister"})'),
        ),
        lambda figures: figures == (BATCHES, PARTITIONS, 0),
        timeout=90,
        interval=0.5,
    )
    assert persisted == (BATCHES, PARTITIONS, 0)

    # The dependencies the alert FittrackDependencyDown watches, under the names it shows.
    dependencies = {
        item["metric"]["dependency"]: item["value"][1] for item in prometheus.query("fittrack_dependency_up")
    }
    assert {"kafka": "1", "postgresql": "1"}.items() <= dependencies.items()


def test_prometheus_loads_the_alert_rules_and_evaluates_them_and_every_dashboard_query(exporting, prometheus):
    expected = {rule["alert"] for rule in alert_rules()}

    def rule_states() -> dict[str, tuple[str, str, str]]:
        groups = prometheus.api("rules")["groups"]
        return {
            rule["name"]: (rule["health"], rule["state"], rule.get("lastError", ""))
            for group in groups
            for rule in group["rules"]
        }

    # Evaluated (health "ok", not "unknown") and, with both processes up and nothing failing, quiet.
    states = eventually(
        rule_states,
        lambda found: set(found) == expected and all(health == "ok" for health, _, _ in found.values()),
        timeout=30,
        interval=0.5,
    )
    assert {name: state[2] for name, state in states.items()} == {name: "" for name in expected}
    for name in ("FittrackTargetDown", "FittrackDependencyDown", "FittrackGrpcErrorRateHigh"):
        assert states[name][1] == "inactive", (name, states[name])

    # Every rule's expression and every dashboard query is one Prometheus evaluates without an error.
    for rule in alert_rules():
        prometheus.query(rule["expr"])
    for _, expression in dashboard_expressions():
        prometheus.query(expression)

    # And the panels fed by these two processes show data: the persister's lag per partition, the processes up.
    panels = dict(dashboard_expressions())
    lag = eventually(lambda: prometheus.query(panels["Persister lag by partition"]), bool, timeout=30, interval=0.5)
    assert {item["metric"]["partition"] for item in lag} == {str(number) for number in range(PARTITIONS)}
