"""`fittrack-loadgen` run as a user runs it, against a real server: its figures and exit status tell the truth.

A run whose devices the server refused streams to (the per-user stream limit) fails and says why; a short
paced run reports the rate it offered, not the burst of one batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def loadgen(server, *arguments: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FITTRACK_")}
    result = subprocess.run(
        [str(BIN / "fittrack-loadgen"), "--server", server.address, *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, shown
    (line,) = result.stdout.splitlines()
    return result, json.loads(line)


# The stream limit and the pacing are the server process's and the client's own: one profile shows them.
@pytest.mark.parametrize("profile", ["embedded"])
def test_more_devices_per_user_than_the_server_allows_streams_fail_the_run_and_say_what_to_lower(server):
    # The server's default: 8 open streams per user. Nine devices of one user: the ninth is refused.
    result, figures = loadgen(server, "--devices", "9", "--devices-per-user", "9", "--duration", "1")

    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, shown
    assert figures["refused_devices"] == 1, shown
    # The server's refusal, never gRPC's INTERNAL for a hello lost as the server ended the call.
    assert set(figures["error_codes"]) == {"RESOURCE_EXHAUSTED"}, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: 1 device of 9 was refused its first stream, so offered less than planned"], shown
    assert "FITTRACK_MAX_STREAMS_PER_USER" in result.stderr and "lower --devices-per-user" in result.stderr, shown


@pytest.mark.parametrize("profile", ["embedded"])
def test_as_many_devices_per_user_as_the_server_allows_streams_run_without_a_refusal(server):
    result, figures = loadgen(server, "--devices", "8", "--devices-per-user", "8", "--duration", "1")

    assert result.returncode == 0, result.stderr
    assert (figures["refused_devices"], figures["error_codes"], result.stderr) == (0, {}, "")


@pytest.mark.parametrize("profile", ["embedded"])
def test_a_short_paced_run_reports_the_rate_it_offered_and_not_the_burst_of_one_batch(server):
    # Ten devices (the default) at 50 readings/s for a second: each device's share is 5 readings a second,
    # so a batch of 5 (not the default 100) from each, spread over the second.
    result, figures = loadgen(server, "--rate", "50", "--duration", "1")

    assert result.returncode == 0, result.stderr
    assert (figures["batch"], figures["batches"], figures["readings"]) == (5, 10, 50), figures
    assert figures["seconds"] >= 1.0, figures
    assert 0 < figures["readings_per_s"] <= 50.0, figures
