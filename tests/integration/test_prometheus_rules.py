"""ops/: the scrape configuration, alert rules and dashboard an operator installs, checked the way Prometheus
checks them (Debian's promtool, installed by `make tools`), and held to the metric names the processes export.

A metric renamed in the code and not here would leave an alert that never fires and a panel that stays empty
without anyone noticing: the name checks below fail instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry

from fittrack.core.adapters.instruments import Instruments
from tests.operations import (
    ALERT_TESTS,
    ALERTS,
    ROOT,
    SCRAPE_CONFIG,
    alert_rules,
    dashboard_expressions,
    metric_names,
)

# The metrics the processes export (issue 14's agreed names), by kind: a counter is read as <name>_total, a
# histogram as <name>_bucket, _sum and _count. `up` is Prometheus's own, one per scraped target.
COUNTERS = {
    "grpc_server_started",
    "grpc_server_handled",
    "fittrack_ingest_readings",
    "fittrack_ingest_batches",
    "fittrack_kafka_produce_errors",
    "fittrack_kafka_produce_retries",
    "fittrack_kafka_consumed_records",
    "fittrack_notifications_stored",
    "fittrack_notifications_pushed",
    "fittrack_notifications_push_retries",
    "fittrack_notifications_dead_lettered",
    "fittrack_evaluator_slots",
    "fittrack_evaluator_users_evaluated",
    "fittrack_logins",
    "fittrack_throttled_addresses",
    "fittrack_throttled_accounts",
    "fittrack_refresh_token_reuse",
}
HISTOGRAMS = {
    "grpc_server_handling_seconds",
    "fittrack_ingest_ack_seconds",
    "fittrack_kafka_batch_apply_seconds",
    "fittrack_store_operation_seconds",
    "fittrack_evaluator_slot_seconds",
}
GAUGES = {
    "fittrack_grpc_open_streams",
    "fittrack_ingest_batches_in_flight",
    "fittrack_kafka_consumer_lag",
    "fittrack_store_pool_connections_in_use",
    "fittrack_dependency_up",
}
SERIES = (
    {f"{name}_total" for name in COUNTERS}
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | GAUGES
    | {"up"}
)


def exported_series() -> set[str]:
    """The series names a process's instruments (fittrack/core/adapters/instruments.py) can expose."""
    registry = CollectorRegistry()
    Instruments(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed: `make tools` installs Debian's prometheus package, which has it"
    return found


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_accepts_the_scrape_configuration_and_the_rules_it_loads(promtool):
    checked = run([promtool, "check", "config", str(SCRAPE_CONFIG)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr
    rules = run([promtool, "check", "rules", str(ALERTS)])
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout + rules.stderr


def test_every_alert_fires_and_stays_quiet_when_its_unit_tests_say(promtool):
    tested = run([promtool, "test", "rules", str(ALERT_TESTS)])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not():
    fires, quiet = set(), set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts no test sees firing"
    assert names - quiet == set(), "alerts no test sees staying quiet"


def test_every_alert_has_a_severity_and_tells_the_operator_what_to_look_at():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        # A description that names where to look: a dashboard panel, a unit's journal, a command or a setting.
        description = rule["annotations"]["description"]
        assert re.search(r"dashboard|journalctl|systemctl|fittrack-admin|FITTRACK_", description), rule["alert"]


def test_the_alerts_cover_lag_dead_letters_errors_dependencies_targets_and_silence():
    selected = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert {
        "fittrack_kafka_consumer_lag",
        "fittrack_notifications_dead_lettered_total",
        "grpc_server_handled_total",
        "fittrack_dependency_up",
        "up",
        "fittrack_ingest_readings_total",
    } <= selected


def test_the_processes_export_every_metric_the_rules_and_dashboard_may_name():
    # A metric renamed in the code fails here, before an alert silently stops matching anything.
    assert SERIES - {"up"} - exported_series() == set()


def test_the_alert_rules_name_only_metrics_the_processes_export():
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert names <= SERIES, f"{rule['alert']} selects {sorted(names - SERIES)}, which no process exports"


def test_the_dashboard_names_only_metrics_the_processes_export():
    for title, expression in dashboard_expressions():
        names = metric_names(expression)
        assert names, f"{title}: no metric found in {expression!r}"
        assert names <= SERIES, f"panel {title!r} selects {sorted(names - SERIES)}, which no process exports"


def test_the_dashboard_shows_the_main_figures():
    shown = {name for _, expression in dashboard_expressions() for name in metric_names(expression)}
    assert {
        "fittrack_ingest_readings_total",
        "fittrack_ingest_ack_seconds_bucket",
        "fittrack_kafka_consumer_lag",
        "grpc_server_handled_total",
        "fittrack_store_operation_seconds_bucket",
        "fittrack_notifications_pushed_total",
        "fittrack_notifications_dead_lettered_total",
        "fittrack_logins_total",
    } <= shown
    expressions = " ".join(expression for _, expression in dashboard_expressions())
    assert "histogram_quantile(0.5," in expressions and "histogram_quantile(0.99," in expressions


def test_every_dashboard_expression_parses(promtool, tmp_path):
    # promtool parses a rule file's expressions without a server: each query becomes a recording rule.
    rules = [
        {"record": f"dashboard:query_{number}", "expr": expression}
        for number, (_, expression) in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run([promtool, "check", "rules", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout + checked.stderr


def test_the_name_check_finds_a_renamed_metric():
    # The check itself, on expressions shaped like the rules': a name it does not know is reported.
    expression = 'sum by (topic) (max by (topic, partition) (fittrack_kafka_lag{role="persister"})) > 100'
    assert metric_names(expression) == {"fittrack_kafka_lag"}
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(fittrack_ingest_ack_seconds_bucket{a="b c"}[5m]))) '
        'and on() sum(up{job="x"}) > 1e3 or on() vector(0)'
    ) == {"fittrack_ingest_ack_seconds_bucket", "up"}
