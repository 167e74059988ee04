"""The cluster tier: Fittrack on the highly available layout (infra/cluster), three network-namespace hosts.

Needs root and network namespaces (CI has both). The module-scoped `cluster` fixture runs `make cluster`,
waits until `cluster.py status` reports every role healthy, and runs `make cluster-stop` at the end, unless
the cluster was already healthy before (then it is left as it was found).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "infra" / "cluster"
LAYOUT = tomllib.loads((CLUSTER / "layout.toml").read_text())


def _cannot_run() -> str | None:
    if sys.platform != "linux":
        return "the cluster tier needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the cluster tier needs root: it makes network namespaces (ip netns) and runs PostgreSQL as postgres"
    if not shutil.which("ip") or not shutil.which("unshare"):
        return "the cluster tier needs iproute2's ip and util-linux's unshare"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return "this machine cannot make network namespaces (unshare --net failed)"
    return None


def status() -> subprocess.CompletedProcess:
    return subprocess.run(
        ["python3", str(CLUSTER / "cluster.py"), "status"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


class Cluster:
    def __init__(self) -> None:
        self.hosts = {name: h["address"] for name, h in LAYOUT["hosts"].items()}
        self.ports = LAYOUT["ports"]

    def grpc(self, host: str) -> str:
        """The address of `host`'s balancer, as a client outside the hosts reaches it."""
        return f"{self.hosts[host]}:{self.ports['grpc']}"


@pytest.fixture(scope="module")
def cluster():
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    was_up = status().returncode == 0
    if not was_up:
        subprocess.run(["make", "cluster"], cwd=ROOT, check=True, timeout=900)
    try:
        eventually(status, lambda r: r.returncode == 0, timeout=120, interval=2)
        yield Cluster()
    finally:
        if not was_up:
            subprocess.run(["make", "cluster-stop"], cwd=ROOT, check=True, timeout=300)
