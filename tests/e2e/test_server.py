"""The server as a whole: health, reflection, the auth wall, shutdown, `make run` and grpcurl."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fittrack.generated.v1 import account_pb2, goal_pb2, metric_pb2, notification_pb2, report_pb2
from tests.support import RunningServer, Stubs, eventually, http_get, register_and_login

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "fittrack.v1.AccountService": account_pb2,
    "fittrack.v1.GoalService": goal_pb2,
    "fittrack.v1.MetricService": metric_pb2,
    "fittrack.v1.ReportService": report_pb2,
    "fittrack.v1.NotificationService": notification_pb2,
}
# ChangePassword also works without a token (username and current password instead): tested in test_accounts.
PUBLIC = {"Register", "Login", "LoginSSO", "ListSSOProviders", "RefreshToken", "ChangePassword"}


def health_status(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


def test_health_reports_every_service_serving(server):
    for service in ("", *SERVICES):
        assert health_status(server.address, service) == health_pb2.HealthCheckResponse.SERVING


def reflect(address: str, request: reflection_pb2.ServerReflectionRequest):
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        return next(stub.ServerReflectionInfo(iter([request]), timeout=5))


def test_reflection_lists_the_five_services_with_their_streaming_kinds(server):
    listed = reflect(server.address, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert set(SERVICES) <= names
    assert "grpc.health.v1.Health" in names

    response = reflect(
        server.address, reflection_pb2.ServerReflectionRequest(file_containing_symbol="fittrack.v1.MetricService")
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    metric_file = next(f for f in files if f.name == "fittrack/v1/metric.proto")
    kinds = {m.name: (m.client_streaming, m.server_streaming) for m in metric_file.service[0].method}
    assert kinds == {"UploadReadings": (True, False), "SyncReadings": (True, True), "ViewMetric": (False, False)}


def every_method():
    for service_name, module in SERVICES.items():
        service = module.DESCRIPTOR.services_by_name[service_name.split(".")[-1]]
        for method in service.methods:
            if method.name not in PUBLIC:
                yield service_name, method


@pytest.mark.parametrize(
    ("service_name", "method"), [pytest.param(s, m, id=f"{s.split('.')[-1]}.{m.name}") for s, m in every_method()]
)
def test_every_private_rpc_refuses_a_call_without_a_token(server, service_name, method):
    path = f"/{service_name}/{method.name}"
    request_bytes = b""
    with grpc.insecure_channel(server.address) as channel:
        if method.client_streaming and method.server_streaming:
            call = channel.stream_stream(path)
            invoke = lambda: list(call(iter([request_bytes]), timeout=5))  # noqa: E731
        elif method.client_streaming:
            call = channel.stream_unary(path)
            invoke = lambda: call(iter([request_bytes]), timeout=5)  # noqa: E731
        elif method.server_streaming:
            call = channel.unary_stream(path)
            invoke = lambda: list(call(request_bytes, timeout=5))  # noqa: E731
        else:
            call = channel.unary_unary(path)
            invoke = lambda: call(request_bytes, timeout=5)  # noqa: E731
        with pytest.raises(grpc.RpcError) as caught:
            invoke()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_process(command, tmp_path, port, **settings: str):
    env = {
        **os.environ,
        "FITTRACK_LISTEN": f"127.0.0.1:{port}",
        "FITTRACK_DATA_DIR": str(tmp_path / "var"),
        "FITTRACK_BCRYPT_ROUNDS": "4",
        **settings,
    }
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def answers_health(address):
    try:
        return health_status(address) == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def test_the_server_stops_gracefully_on_sigterm(tmp_path):
    port = free_port()
    process = start_process([sys.executable, "-m", "fittrack.app.server"], tmp_path, port)
    try:
        eventually(lambda: answers_health(f"127.0.0.1:{port}"), bool, timeout=30)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopped" in output
    assert not answers_health(f"127.0.0.1:{port}")


def test_make_run_starts_a_server_that_answers_health(tmp_path):
    port = free_port()
    process = start_process(["make", "--no-print-directory", "run"], tmp_path, port)
    try:
        eventually(lambda: answers_health(f"127.0.0.1:{port}"), bool, timeout=120, interval=0.2)
    finally:
        # make runs the server as its child; stopping the child ends make too.
        for child in _children(process.pid):
            os.kill(child, signal.SIGTERM)
        process.wait(timeout=20)


def _children(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in result.stdout.split()]


GRPCURL = ROOT / "var" / "bin" / "grpcurl"


@pytest.mark.skipif(not GRPCURL.exists() and shutil.which("grpcurl") is None, reason="run `make grpcurl` first")
def test_grpcurl_lists_and_calls_the_services_through_reflection(server, new_username):
    grpcurl = str(GRPCURL if GRPCURL.exists() else shutil.which("grpcurl"))
    listed = subprocess.run([grpcurl, "-plaintext", server.address, "list"], capture_output=True, text=True, check=True)
    assert set(SERVICES) <= set(listed.stdout.split())
    registered = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            json.dumps({"username": (gina := new_username("gina")), "password": "a long password"}),
            server.address,
            "fittrack.v1.AccountService/Register",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(registered.stdout)["profile"]["username"] == gina
    described = subprocess.run(
        [grpcurl, "-plaintext", server.address, "describe", "fittrack.v1.MetricService"],
        capture_output=True,
        text=True,
        check=True,
    )
    bidirectional = "rpc SyncReadings ( stream .fittrack.v1.SyncReadingsRequest ) returns ( stream "
    assert bidirectional in described.stdout


# --- the readiness endpoint, for load balancers that cannot send a gRPC health check ---


@pytest.fixture
def ready_server(server_config, clock):
    running = RunningServer(dataclasses.replace(server_config, ready_listen="127.0.0.1:0"), clock)
    yield running
    with contextlib.suppress(Exception):
        running.stop()


def test_the_readiness_endpoint_says_serving_and_live_and_refuses_other_requests(ready_server):
    base = f"http://127.0.0.1:{ready_server.server.readiness.port}"
    assert http_get(f"{base}/ready") == (200, "serving\n")
    assert http_get(f"{base}/live") == (200, "alive\n")
    assert http_get(f"{base}/metrics")[0] == 404
    assert http_get(f"{base}/ready", method="POST")[0] == 405


def test_a_server_shutting_down_is_not_ready_while_its_calls_finish(ready_server, stubs_for_ready):
    """A balancer stops sending new calls as soon as the server begins to stop, not when its port closes."""
    base = f"http://127.0.0.1:{ready_server.server.readiness.port}"
    stream = stubs_for_ready.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=stubs_for_ready.user.auth
    )
    stream.initial_metadata()  # a call in flight, which the stop waits for
    stopping = threading.Thread(target=lambda: ready_server._call(lambda: ready_server.server.stop(grace=5)))
    stopping.start()
    try:
        status, body = eventually(lambda: http_get(f"{base}/ready"), lambda answer: answer[0] == 503, timeout=5)
        assert body == "not serving: shutting down\n"
    finally:
        stream.cancel()
        stopping.join(timeout=15)


@pytest.fixture
def stubs_for_ready(ready_server, new_username):
    stubs = Stubs.connect(ready_server.address)
    stubs.user = register_and_login(stubs, new_username("ready"))
    yield stubs
    stubs.channel.close()


def test_a_readiness_address_that_is_taken_stops_the_server_from_starting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port()
        env = {"FITTRACK_READY_LISTEN": f"127.0.0.1:{taken.getsockname()[1]}"}
        process = start_process([sys.executable, "-m", "fittrack.app.server"], tmp_path, port, **env)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "FITTRACK_READY_LISTEN" in output and "Traceback" not in output
