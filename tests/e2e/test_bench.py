"""The benchmarks run, with tiny numbers, as `make bench` runs them: a subprocess printing JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.common import free_port
from tests.production import ROOT

TINY_INGEST = ["--devices", "4", "--readings", "2000", "--batch", "100", "--window", "4"]


def run_bench(module: str, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr
    return lines


def assert_ingest_figures(figures: dict, profile: str) -> None:
    assert figures["bench"] == "ingest" and figures["profile"] == profile
    assert "error" not in figures and "skipped" not in figures, figures
    assert figures["devices"] == 4 and figures["readings"] == 2000 and figures["batch"] == 100
    assert figures["visible_readings"] == 2000
    assert figures["readings_per_s"] > 0
    assert figures["acked_readings_per_s"] >= figures["readings_per_s"]
    assert 0 < figures["ack_p50_ms"] <= figures["ack_p99_ms"]
    assert figures["server_peak_rss_mb"] > 10
    assert figures["anchor_readings_per_s"] > 0 and figures["anchor_peak_rss_mb"] > 10
    assert figures["ratio_to_anchor"] == pytest.approx(
        figures["readings_per_s"] / figures["anchor_readings_per_s"], rel=1e-3, abs=1e-4
    )


def test_ingest_embedded_prints_its_figures_and_the_anchor():
    (figures,) = run_bench("bench.ingest", "--profile", "embedded", *TINY_INGEST)
    assert_ingest_figures(figures, "embedded")


@pytest.mark.production
def test_ingest_production_prints_its_figures_and_the_anchor():
    (figures,) = run_bench("bench.ingest", "--profile", "production", *TINY_INGEST, "--visible-timeout", "30")
    if "skipped" in figures:
        # Like the production fixtures, this fails rather than skips: `make test` starts the services.
        pytest.fail(f"the production ingest benchmark was skipped: {figures['skipped']}", pytrace=False)
    assert_ingest_figures(figures, "production")
    assert figures["persisters"] == 2 and figures["persister_peak_rss_mb"] > 10


def test_ingest_production_says_why_it_skipped_when_the_services_are_down():
    closed = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "FITTRACK_PG_DSN": f"postgresql://fittrack@{closed}/fittrack",
        "FITTRACK_KAFKA_BOOTSTRAP": closed,
        "FITTRACK_MONGO_URI": f"mongodb://{closed}/",
    }
    (figures,) = run_bench("bench.ingest", "--profile", "production", *TINY_INGEST, env=env)
    assert figures["bench"] == "ingest" and figures["profile"] == "production"
    assert figures["skipped"].startswith("services not running: run make services")
    assert "readings_per_s" not in figures


def test_streams_holds_the_streams_open_and_compares_with_the_anchor():
    (figures,) = run_bench("bench.streams", "--streams", "50", "--per-channel", "20")
    assert figures["bench"] == "streams" and "error" not in figures, figures
    assert figures["streams"] == 50 and figures["users"] == 7 and figures["channels"] == 3
    assert figures["server_rss_mb"] > 10 and figures["anchor_rss_mb"] > 10
    assert figures["server_peak_rss_mb"] >= figures["server_rss_mb"]
    assert figures["ratio_to_anchor"] == pytest.approx(figures["server_rss_mb"] / figures["anchor_rss_mb"], abs=0.02)
    assert figures["open_s"] > 0 and figures["health_ms"] > 0 and figures["view_metric_ms"] > 0
    assert figures["within_1gib"] is True
