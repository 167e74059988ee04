"""One node lost, cut off, lossy or slow at a time: nothing acknowledged is lost, nothing is counted twice,
and every kind of call answers again while the fault still lasts.

Each test runs a fleet of watches syncing through every balancer, with probes making unary calls, through
one fault (bench/faults.py, the same runs bench/cluster.py measures). The figures of each run are printed,
so a failure shows them.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.faults import FAULTS, run_fault


def run(name: str) -> dict:
    figures = asyncio.run(run_fault(FAULTS[name], log=print))
    print(json.dumps(figures))
    return figures


def assert_nothing_lost_or_doubled(figures: dict) -> None:
    assert figures["unacknowledged_batches"] == 0, figures
    assert figures["device_errors"] == [], figures
    assert figures["readings_acknowledged"] == figures["readings_sent"] > 0, figures
    assert (figures["missing"], figures["counted_twice"]) == (0, 0), figures
    assert figures["accounts_lost"] == [], figures
    # Work moved to the processes left: readings were stored and goals announced while the fault lasted.
    assert figures["persisted_while_faulted_within_s"] is not None, figures
    assert figures["users_notified_while_faulted"] == figures["devices"], figures
    assert figures["healthy_after_heal_s"] is not None, figures
    # Nothing stopped: while the fault still lasted, every kind of call answered again.
    assert figures["answering_again_after_s"] < figures["fault_held_s"], figures


@pytest.mark.parametrize(
    "fault",
    ["kafka-broker-killed", "kafka-leader-cut", "server-killed", "persister-killed", "dispatcher-killed"]
    + ["ferretdb-killed", "packet-loss", "latency"],
)
def test_the_fleet_loses_nothing_and_counts_nothing_twice_through(cluster, fault):
    assert_nothing_lost_or_doubled(run(fault))


def test_the_postgres_leader_s_host_cut_off_fails_over_and_rejoins_without_losing_an_account(cluster):
    figures = run("postgres-leader-cut")
    assert_nothing_lost_or_doubled(figures)
    # Patroni promoted the replica: accounts were written and acknowledged while the old leader was away ...
    assert figures["new_leader"] not in (None, figures["host"]), figures
    assert figures["accounts_acknowledged_while_faulted"] > 0, figures
    # Reads did not wait for the promotion: once HAProxy saw the primary gone (seconds), session checks and
    # profiles were read on the replica, while writes waited for the new leader (about 25 s).
    reads_failed_until = max(figures["failures_from_to_s"].get(kind, [0, 0])[1] for kind in ("view", "profile"))
    assert reads_failed_until < 15, figures
    # ... and the old leader came back as a replica (pg_rewind) holding every one of them.
    assert figures["old_leader_replica_after_s"] is not None, figures
    assert figures["accounts_missing_on_old_leader"] == [], figures
