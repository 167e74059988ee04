"""infra/services.sh on a machine other checkouts have used: their leftovers must not stop ours.

CI clones the repository into a fresh directory on a machine where an older checkout's
cluster is registered on the same port. After a machine restart that cluster's data dir
still holds pid files naming a process long gone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.production import ROOT, SERVICES, service_settings

pytestmark = pytest.mark.production

PG_VERSION = "15"


def a_pid_no_process_has() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def our_postmaster() -> int:
    return int((ROOT / "var" / "postgres" / "data" / "postmaster.pid").read_text().split()[0])


def registered_clusters() -> str:
    return subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def stale_cluster_of_another_checkout():
    """A fittrack_* cluster registered on our port, not running, whose pid files a restart left behind."""
    port = urlsplit(service_settings()["FITTRACK_PG_DSN"]).port
    name = f"fittrack_stale{a_pid_no_process_has()}"
    # Under var/, which the postgres user can already traverse; pytest's tmp dirs are private to root.
    data_dir = ROOT / "var" / "test-clusters" / name
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["pg_createcluster", PG_VERSION, name, "--port", str(port), "-d", str(data_dir), "--start-conf", "manual"],
        check=True,
        capture_output=True,
    )
    # Both pid files survive a restart: the one in the data dir and Debian's external one, whose
    # dead pid sends pg_lsclusters to probe the port, where our own cluster answers "online".
    dead_pid = a_pid_no_process_has()
    external_pid_file = Path("/var/run/postgresql") / f"{PG_VERSION}-{name}.pid"
    for pid_file, text in (
        (data_dir / "postmaster.pid", f"{dead_pid}\n{data_dir}\n1795585543\n{port}\n"),
        (external_pid_file, f"{dead_pid}\n"),
    ):
        pid_file.write_text(text)
        shutil.chown(pid_file, "postgres", "postgres")
    try:
        yield name, data_dir
    finally:
        external_pid_file.unlink(missing_ok=True)
        # pg_dropcluster would ask the port whether the cluster runs, and ours answers on it.
        shutil.rmtree(Path("/etc/postgresql") / PG_VERSION / name, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_services_start_again_beside_a_cluster_a_restart_left_with_a_stale_pid_file(stale_cluster_of_another_checkout):
    name, _ = stale_cluster_of_another_checkout
    postmaster = our_postmaster()

    started = subprocess.run([*SERVICES, "start"], cwd=ROOT, capture_output=True, text=True)

    assert started.returncode == 0, started.stderr[-2000:]
    assert name not in started.stderr
    assert our_postmaster() == postmaster
    status = subprocess.run([*SERVICES, "status"], cwd=ROOT, capture_output=True, text=True)
    assert status.returncode == 0, status.stdout
    assert "postgresql: up" in status.stdout


def test_services_drop_a_deleted_checkouts_cluster_without_touching_the_running_one(stale_cluster_of_another_checkout):
    name, data_dir = stale_cluster_of_another_checkout
    shutil.rmtree(data_dir)
    postmaster = our_postmaster()

    started = subprocess.run([*SERVICES, "start"], cwd=ROOT, capture_output=True, text=True)

    assert started.returncode == 0, started.stderr[-2000:]
    assert name not in registered_clusters()
    assert our_postmaster() == postmaster
