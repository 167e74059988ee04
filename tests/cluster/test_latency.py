"""A slow link (issue 12, item 8): `cluster.py latency h3 200` puts a Toxiproxy inside h3 between h3 and the
other hosts (infra/cluster/latency.py). The connections h3 opens get slower, the service keeps answering,
and `latency h3 off` makes them fast again."""

from __future__ import annotations

import json
import statistics
import subprocess
import tomllib
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "infra" / "cluster"
NETNS_PREFIX = tomllib.loads((CLUSTER / "layout.toml").read_text())["network"]["prefix"]

# Run by the system python3 inside a host's namespace: five fresh connections (a new connection is what
# the DNAT sends through the proxy), each timed from connect to the first byte of the stats page.
PROBE = """
import json, socket, sys, time
out = []
for _ in range(5):
    t0 = time.perf_counter()
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
        s.sendall(b"GET /;csv HTTP/1.0\\r\\n\\r\\n")
        s.recv(1)
    out.append((time.perf_counter() - t0) * 1000)
print(json.dumps(out))
"""


def round_trip_ms(cluster, source: str, target: str) -> float:
    """Median ms of a TCP round trip from inside `source` to `target`'s HAProxy stats port."""
    netns = NETNS_PREFIX + source
    address, port = cluster.hosts[target], str(cluster.ports["haproxy_stats"])
    probe = ["ip", "netns", "exec", netns, "python3", "-c", PROBE, address, port]
    out = subprocess.run(probe, check=True, capture_output=True, text=True, timeout=60).stdout
    return statistics.median(json.loads(out))


# Run inside a host's namespace: one connection, opened and then waiting for an answer that never comes, as
# HAProxy waits on a query for PostgreSQL. It says when the connection is up, then how it ended.
WAITER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("connected", flush=True)
s.settimeout(120)
try:
    ended = "closed" if s.recv(1) == b"" else "answered"
except OSError as error:
    ended = "closed" if not isinstance(error, TimeoutError) else "hung"
print(ended, flush=True)
"""


def latency(host: str, value: str) -> None:
    # the first use builds Toxiproxy from the Go module proxy
    subprocess.run(["python3", str(CLUSTER / "cluster.py"), "latency", host, value], cwd=ROOT, check=True, timeout=300)


def serving_through(cluster, host: str, calls: int) -> list[int]:
    """grpc.health.v1 Check through `host`'s balancer, `calls` times: the balancer spreads them per call
    over every server, so the ones behind the slow link answer too."""
    with grpc.insecure_channel(cluster.grpc(host)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return [stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status for _ in range(calls)]


def test_latency_on_h3_slows_the_connections_it_opens_and_the_service_still_answers(cluster, control):
    fast = eventually(lambda: round_trip_ms(cluster, "h3", "h1"), lambda ms: ms < 50, timeout=30, interval=0.5)
    waiter = None
    try:
        latency("h3", "200")
        slow = eventually(
            lambda: round_trip_ms(cluster, "h3", "h1"), lambda ms: ms >= fast + 150, timeout=30, interval=0.5
        )
        assert slow < fast + 400, (fast, slow)
        # connections h1 opens to h3 do not go through h3's proxy
        other_way = round_trip_ms(cluster, "h1", "h3")
        assert other_way < 50, (fast, slow, other_way)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert serving_through(cluster, "h3", 6) == [serving] * 6
        address, port = cluster.hosts["h1"], str(cluster.ports["haproxy_stats"])
        waiter = subprocess.Popen(
            ["ip", "netns", "exec", NETNS_PREFIX + "h3", "python3", "-c", WAITER, address, port],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert waiter.stdout.readline().strip() == "connected"
    finally:
        latency("h3", "off")
    eventually(lambda: round_trip_ms(cluster, "h3", "h1"), lambda ms: ms < 50, timeout=30, interval=0.5)
    # A connection through the proxy that was waiting for an answer hears that it closed, and its client
    # reconnects; it is not left half-open, waiting for good.
    assert waiter is not None
    try:
        assert waiter.communicate(timeout=10)[0].strip() == "closed"
    finally:
        waiter.kill()
    # Every role is healthy again: the processes whose connections went through the proxy reconnected.
    eventually(control.healthy, bool, timeout=120, interval=2)
