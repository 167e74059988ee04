"""etcd 3.4 (Debian): one member per host; the v2 API is on for Patroni's `etcd:` DCS."""

from __future__ import annotations

import json
import urllib.request

from common import Host, Layout, pidfile_pid, spawn, terminate

ROLE = "etcd"


def _pidfile(h: Host):
    return h.dir(ROLE) / "etcd.pid"


def _marker(h: Host) -> str:
    return f"--data-dir {h.dir(ROLE) / 'data'}"


def pid(lay: Layout, h: Host) -> int | None:
    return pidfile_pid(_pidfile(h), _marker(h))


def start(lay: Layout, h: Host) -> bool:
    """Start the member unless it runs; True when it was started now."""
    if pid(lay, h):
        return False
    p = lay.ports
    members = ",".join(f"{m.name}=http://{m.address}:{p['etcd_peer']}" for m in lay.with_role(ROLE))
    d = h.dir(ROLE)
    d.mkdir(parents=True, exist_ok=True)
    argv = [
        "etcd", "--name", h.name, "--data-dir", str(d / "data"),
        "--listen-peer-urls", f"http://{h.address}:{p['etcd_peer']}",
        "--initial-advertise-peer-urls", f"http://{h.address}:{p['etcd_peer']}",
        "--listen-client-urls", f"http://{h.address}:{p['etcd_client']},http://127.0.0.1:{p['etcd_client']}",
        "--advertise-client-urls", f"http://{h.address}:{p['etcd_client']}",
        "--initial-cluster", members, "--initial-cluster-state", "new",
        "--initial-cluster-token", lay.section("etcd").get("token", "fittrack-cluster"),
        # Patroni 3.0.2's etcd (v2) DCS; Debian's etcd 3.4 has v2 off by default
        "--enable-v2=true",
        # an isolated member must not force a new election on the healthy pair when it comes back
        "--pre-vote=true",
    ]  # fmt: skip
    spawn(h, argv, d / "etcd.log", _pidfile(h))
    return True


def stop(lay: Layout, h: Host) -> None:
    p = pid(lay, h)
    if p:
        terminate(p, f"etcd on {h.name}", 30)
    _pidfile(h).unlink(missing_ok=True)


def _get(url: str, data: bytes | None = None, timeout: float = 2.0) -> dict:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def probe(lay: Layout, h: Host) -> tuple[bool, str]:
    if not pid(lay, h):
        return False, "not running"
    base = f"http://{h.address}:{lay.ports['etcd_client']}"
    try:
        health = _get(f"{base}/health")
        st = _get(f"{base}/v3/maintenance/status", b"{}")
        _get(f"{base}/v2/keys/")  # v2 API on (Patroni needs it)
    except Exception as e:  # noqa: BLE001
        return False, f"no answer: {e}"
    if health.get("health") != "true":
        return False, f"unhealthy: {health}"
    me, leader = st.get("header", {}).get("member_id"), st.get("leader")
    role = "leader" if me == leader else "follower"
    return True, f"{role}, raft term {st.get('raftTerm', '?')}, v2 on"
