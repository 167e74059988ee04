"""Fittrack on the cluster, end to end: each step through a different host's balancer."""

from __future__ import annotations

import csv
import io
import secrets
import urllib.request
from datetime import UTC, datetime

import pymongo

from fittrack.clients.activity import STEPS
from fittrack.clients.sync_call import sync_readings
from tests.support import Stubs, eventually, local_midnight, register_and_login, view_today


def test_register_on_h1_sync_on_h2_view_on_h3(cluster):
    first, second, third = (Stubs.connect(cluster.grpc(h)) for h in ("h1", "h2", "h3"))
    try:
        user = register_and_login(first, f"cluster-{secrets.token_hex(4)}")
        midnight = local_midnight(lambda: datetime.now(UTC), "UTC")
        # three hours of minutes just after local midnight: always the user's today
        readings = [(STEPS, midnight + 60 * minute, float(20 + minute % 50)) for minute in range(180)]
        expected = sum(value for _, _, value in readings)

        synced = sync_readings(second.metrics, readings, "watch-1", user.auth, batch_size=60, timeout=60)
        assert (synced.readings_accepted, synced.batches_rejected) == (len(readings), 0), synced.rejections

        view = eventually(
            lambda: view_today(third, user, STEPS), lambda v: v.total == expected, timeout=60, interval=0.5
        )
        assert view.total == expected
    finally:
        for stubs in (first, second, third):
            stubs.channel.close()


def _calls_per_server(cluster, host: str) -> dict[str, int]:
    url = f"http://{cluster.hosts[host]}:{cluster.ports['haproxy_stats']}/;csv"
    with urllib.request.urlopen(url, timeout=5) as response:
        rows = csv.DictReader(io.StringIO(response.read().decode().lstrip("# ")))
        calls: dict[str, int] = {}
        for r in rows:  # writes and streams go to grpc_servers, calls that only read to grpc_reads
            if r["pxname"] in ("grpc_servers", "grpc_reads") and r["svname"] in cluster.hosts:
                calls[r["svname"]] = calls.get(r["svname"], 0) + int(r["stot"])
        return calls


def test_one_channel_s_calls_are_spread_over_every_server(cluster):
    before = _calls_per_server(cluster, "h1")
    stubs = Stubs.connect(cluster.grpc("h1"))
    try:
        user = register_and_login(stubs, f"spread-{secrets.token_hex(4)}")
        for _ in range(9):
            view_today(stubs, user, STEPS)
    finally:
        stubs.channel.close()
    after = _calls_per_server(cluster, "h1")
    assert all(after[h] > before.get(h, 0) for h in cluster.hosts), (before, after)


def test_a_document_written_through_one_ferretdb_is_read_through_the_others(cluster):
    uris = [f"mongodb://{address}:{cluster.ports['ferretdb']}/" for address in cluster.hosts.values()]
    clients = [pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) for uri in uris]
    key = f"smoke-{secrets.token_hex(4)}"
    try:
        meta = [client["fittrack"]["fittrack_meta"] for client in clients]
        meta[0].insert_one({"_id": key})
        assert [m.find_one({"_id": key}) for m in meta[1:]] == [{"_id": key}] * (len(meta) - 1)
    finally:
        meta[0].delete_one({"_id": key})
        for client in clients:
            client.close()
