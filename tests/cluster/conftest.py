"""The cluster tier: Fittrack on the highly available layout (infra/cluster), three network-namespace hosts.

Needs root and network namespaces (CI has both). The package-scoped `cluster` fixture runs `make cluster`,
waits until `cluster.py status` reports every role healthy, and runs `make cluster-stop` at the end, unless
the cluster was already healthy before (then it is left as it was found).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.faults import cannot_run, cluster_running
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "infra" / "cluster"
LAYOUT = tomllib.loads((CLUSTER / "layout.toml").read_text())


class Cluster:
    def __init__(self) -> None:
        self.hosts = {name: h["address"] for name, h in LAYOUT["hosts"].items()}
        self.ports = LAYOUT["ports"]

    def grpc(self, host: str) -> str:
        """The address of `host`'s balancer, as a client outside the hosts reaches it."""
        return f"{self.hosts[host]}:{self.ports['grpc']}"


@pytest.fixture(scope="package")
def control():
    """One cluster for the whole tier, stopped after its last test: bringing it up and down costs a minute."""
    if reason := cannot_run():
        pytest.skip(reason)
    with cluster_running() as running:
        yield running


@pytest.fixture
def cluster(control):
    """The cluster, healthy: a test after a fault's heal starts only once every role is back (a server
    that lost its connections at the heal is out of the balancers until it is ready again)."""
    eventually(control.healthy, bool, timeout=120, interval=2)  # a status round itself takes seconds
    return Cluster()
