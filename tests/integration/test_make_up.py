"""`make up` runs the production stack: the server and persister processes against the services."""

import os
import signal
import socket
import subprocess
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fittrack.generated.v1 import common_pb2
from tests.production import ROOT, ProductionStack
from tests.support import (
    Clock,
    Stubs,
    batch,
    eventually,
    local_midnight,
    reading,
    register_and_login,
    upload,
    view_today,
)

pytestmark = pytest.mark.production


def serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def started(process: subprocess.Popen, address: str, log_path) -> bool:
    # A stack that already stopped will never serve: say why at once instead of at the deadline.
    if process.poll() is not None:
        raise AssertionError(f"make up exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
    return serving(address)


def test_make_up_serves_the_walk_through_with_its_own_persisters(tmp_path):
    stack = ProductionStack.create("up")
    address = f"127.0.0.1:{unused_loopback_port()}"
    env = {**os.environ, **stack.env, "FITTRACK_LISTEN": address, "FITTRACK_DATA_DIR": str(tmp_path)}
    env["FITTRACK_BCRYPT_ROUNDS"] = "4"
    # The production profile refuses fewer than 12 rounds unless told this is a test stack.
    env["FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS"] = "1"
    # The logs go to a file: an unread pipe fills up and blocks the processes writing to it.
    log_path = tmp_path / "make-up.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "up"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            eventually(lambda: started(process, address, log_path), bool, timeout=120, interval=0.3)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\nlog tail:\n{log_path.read_text()[-4000:]}") from None
        stubs = Stubs.connect(address)
        user = register_and_login(stubs, f"upuser{time.time_ns() % 10**9}")
        minute = local_midnight(Clock(), "UTC") + 600
        upload(stubs, user, batch([reading(common_pb2.METRIC_KIND_STEPS, minute - 60 * i, 42) for i in range(3)]))
        # The server in `make up` persists nothing itself: the total appears only through its persisters.
        eventually(lambda: view_today(stubs, user, common_pb2.METRIC_KIND_STEPS).total, lambda t: t == 126, timeout=60)
        stubs.channel.close()

        def workers(name: str) -> int:
            found = subprocess.run(["pgrep", "-f", "-s", str(process.pid), name], capture_output=True, text=True)
            return len(found.stdout.split())

        assert (
            workers("fittrack.app.persister"),
            workers("fittrack.app.dispatcher"),
            workers("fittrack.app.evaluator"),
        ) == (2, 1, 1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
        stack.destroy()
