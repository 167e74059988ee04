"""Fittrack itself on the cluster: the migration once per `up`, then servers and workers on the hosts
layout.toml gives them (roles server, persister, dispatcher, evaluator), each in its host's namespace with
that host's var/cluster/<host>.env, the production profile and the [fittrack] section's settings.

The processes run the project's virtualenv (.venv/bin/python); app_tasks.py does the parts that import
the fittrack package.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import ferretdb
import haproxy
from common import CLUSTER_VAR, HERE, ROOT, ClusterError, Host, Layout, log, pidfile_pid, spawn, terminate, wait_for

PY = ROOT / ".venv" / "bin" / "python"
TASKS = HERE / "app_tasks.py"
TOKEN_KEYS = CLUSTER_VAR / "token-keys.json"
MODULES = {role: f"fittrack.app.{role}" for role in ("server", "persister", "dispatcher", "evaluator")}
# collections the metric store uses (fittrack/core/adapters/mongo_layout.py); every FerretDB must list them
COLLECTIONS = (b"metrics", b"minutes", b"fittrack_meta")


def ensure_token_keys() -> Path:
    """One keyring shared by every server (tokens signed on one are accepted by all), made once, 0600."""
    if not TOKEN_KEYS.exists():
        CLUSTER_VAR.mkdir(parents=True, exist_ok=True)
        tmp = TOKEN_KEYS.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"current": "k1", "keys": {"k1": secrets.token_urlsafe(48)}}, f)
        tmp.replace(TOKEN_KEYS)
    TOKEN_KEYS.chmod(0o600)
    return TOKEN_KEYS


def host_env(h: Host) -> dict[str, str]:
    """var/cluster/<host>.env, written by `up` (cluster.write_env)."""
    out = {}
    for line in (CLUSTER_VAR / f"{h.name}.env").read_text().splitlines():
        name, eq, value = line.partition("=")
        if eq:
            out[name] = value
    return out


def _database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def settings(lay: Layout, h: Host, role: str) -> dict[str, str]:
    """The FITTRACK_* settings of `role` on `h` (role "migrate": the migration)."""
    p, ft = lay.ports, lay.section("fittrack")
    env = host_env(h)
    env.update(
        FITTRACK_PROFILE="production",
        FITTRACK_DATA_DIR=str(h.dir(role)),
        FITTRACK_LOG_LEVEL=ft.get("log_level", "INFO"),
        FITTRACK_BCRYPT_ROUNDS=str(ft.get("bcrypt_rounds", 12)),
        FITTRACK_KAFKA_REPLICATION_FACTOR=str(ft["replication_factor"]),
        FITTRACK_READINGS_PARTITIONS=str(ft["readings_partitions"]),
        FITTRACK_NOTIFICATIONS_PARTITIONS=str(ft["notifications_partitions"]),
        FITTRACK_PERSISTER_GROUP=ft["persister_group"],
        FITTRACK_DISPATCHER_GROUP=ft["dispatcher_group"],
    )
    if role == "server":
        env.update(
            FITTRACK_LISTEN=f"{h.address}:{p['server']}",
            FITTRACK_READY_LISTEN=f"{h.address}:{p['server_ready']}",
            FITTRACK_TOKEN_KEYS_FILE=str(TOKEN_KEYS),
            # the balancers connect from the host addresses; their x-forwarded-for names the client
            FITTRACK_TRUSTED_PROXIES=",".join(m.address for m in lay.with_role("haproxy")),
        )
    if role in ("server", "evaluator") and ft.get("reads_from_replicas"):
        # The SQL read path (ViewMetric, reports, goal checks) reads FerretDB's tables on a replica.
        # Persisters and the migration keep the write port: they create the indexes.
        env["FITTRACK_FERRETDB_PG_DSN"] = _database(
            env["FITTRACK_PG_REPLICA_DSN"], lay.section("postgres")["ferret_database"]
        )
    return env


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any FITTRACK_* (a caller's single-node settings), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITTRACK_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def _ns_run(h: Host, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", h.netns, *argv]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


# ---------------------------------------------------------------- once per `up`


def prepare(lay: Layout) -> None:
    """Before any Fittrack process starts: token keys, the migration through the first FerretDB host
    (its env's write DSN reaches the Patroni leader), then every FerretDB made to see the collections."""
    if not PY.exists():
        raise ClusterError(f"{PY} is missing: run `make setup` first")
    ensure_token_keys()
    via = lay.with_role("ferretdb")[0]
    t0 = time.monotonic()
    r = _ns_run(via, [str(PY), str(TASKS), "migrate"], process_env(settings(lay, via, "migrate")), 300)
    if r.returncode != 0:
        raise ClusterError(f"fittrack-migrate on {via.name} failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    log(f"migrated through {via.name}: {r.stdout.strip()} ({time.monotonic() - t0:.1f}s)")
    refresh_ferretdbs(lay)
    verify_ferretdbs(lay)


def _lists_collections(lay: Layout, h: Host) -> bool:
    reply = ferretdb.command(h.address, lay.ports["ferretdb"], {"listCollections": 1, "nameOnly": True,
                                                                "$db": "fittrack"})  # fmt: skip
    return all(name in reply for name in COLLECTIONS)


def refresh_ferretdbs(lay: Layout) -> None:
    """FerretDB 1.x loads the collection list once and never reloads it: restart each instance that does not
    list the metric store's collections, so it loads the list the migration left."""
    stale = [h for h in lay.with_role("ferretdb") if not _lists_collections(lay, h)]
    for h in stale:
        ferretdb.stop(lay, h)
        ferretdb.start(lay, h)
    for h in stale:
        wait_for(lambda h=h: _lists_collections(lay, h), 60, f"FerretDB on {h.name} to list the collections")
    if stale:
        log(f"restarted FerretDB on {', '.join(h.name for h in stale)} so it sees the migrated collections")


def verify_ferretdbs(lay: Layout) -> None:
    members = lay.with_role("ferretdb")
    uris = [f"mongodb://{h.address}:{lay.ports['ferretdb']}/" for h in members]
    r = subprocess.run([str(PY), str(TASKS), "verify", *uris], env=process_env({}), cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if r.returncode != 0:
        raise ClusterError(f"FerretDB check failed: {r.stderr[-2000:]}")
    log(r.stdout.strip())


# ---------------------------------------------------------------- consumer groups (status)

_groups_seen: tuple[float, dict] = (0.0, {})


def group_members(lay: Layout) -> dict:
    """{group: {"state", "hosts"}} for the persister and dispatcher groups, cached for a few seconds."""
    global _groups_seen
    at, seen = _groups_seen
    if time.monotonic() - at < 3 and seen:
        return seen
    ft = lay.section("fittrack")
    bootstrap = ",".join(f"{m.address}:{lay.ports['kafka']}" for m in lay.with_role("kafka"))
    argv = [str(PY), str(TASKS), "groups", bootstrap, ft["persister_group"], ft["dispatcher_group"]]
    r = subprocess.run(argv, env=process_env({}), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        raise ClusterError(f"describing the consumer groups failed: {r.stderr.strip()[-300:]}")
    seen = json.loads(r.stdout)
    _groups_seen = (time.monotonic(), seen)
    return seen


# ---------------------------------------------------------------- the roles

# the workers' consumer session timeout (fittrack/workers/runtime.py: session_timeout_ms=10_000), plus a margin
MEMBER_PROOF_AGE = 12.0


def _age(pid: int) -> float:
    """Seconds since the process started (/proc/<pid>/stat field 22, in clock ticks since boot)."""
    start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start / os.sysconf("SC_CLK_TCK")


class AppRole:
    """One Fittrack process per host that has the role: start, stop, pid, probe (as the other role modules)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.module = MODULES[role]

    def _pidfile(self, h: Host) -> Path:
        return h.dir(self.role) / f"{self.role}.pid"

    def _marker(self, h: Host) -> str:
        # python ignores unknown -X options: this one names the process's directory in its command line
        return f"ftcluster={h.dir(self.role)}"

    def pid(self, lay: Layout, h: Host) -> int | None:
        return pidfile_pid(self._pidfile(h), self._marker(h))

    def start(self, lay: Layout, h: Host) -> bool:
        if self.pid(lay, h):
            return False
        d = h.dir(self.role)
        d.mkdir(parents=True, exist_ok=True)
        env = process_env(settings(lay, h, self.role))
        argv = [str(PY), "-X", self._marker(h), "-m", self.module]
        spawn(h, argv, d / f"{self.role}.log", self._pidfile(h), env=env)
        return True

    def stop(self, lay: Layout, h: Host) -> None:
        p = self.pid(lay, h)
        if p:
            terminate(p, f"{self.role} on {h.name}", 40)
        self._pidfile(h).unlink(missing_ok=True)

    def probe(self, lay: Layout, h: Host) -> tuple[bool, str]:
        p = self.pid(lay, h)
        if not p:
            return False, "not running"
        if self.role == "server":
            return self._probe_server(lay, h)
        if self.role in ("persister", "dispatcher"):
            group = lay.section("fittrack")[f"{self.role}_group"]
            info = group_members(lay).get(group, {})
            hosts, state = info.get("hosts", []), info.get("state")
            mine = hosts.count(h.address)
            ok = mine == 1 and state == "Stable"
            where = {0: "NOT a member", 1: "a member"}.get(mine, f"{mine} members from this host, expected 1")
            detail = f"pid {p}, {where} of group {group} ({state}, {len(hosts)} members)"
            # Members name only their host: a killed predecessor's member lingers until its session times out,
            # so membership proves something only once the process is older than that.
            age = _age(p)
            if ok and age < MEMBER_PROOF_AGE:
                return False, f"{detail}; up {age:.0f}s, membership counts from {MEMBER_PROOF_AGE}s"
            return ok, detail
        return True, f"pid {p}, shares slots with the other evaluators through claims in PostgreSQL"

    def _probe_server(self, lay: Layout, h: Host) -> tuple[bool, str]:
        url = f"http://{h.address}:{lay.ports['server_ready']}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body, status = r.read().decode().strip(), r.status
        except urllib.error.HTTPError as e:
            body, status = e.read().decode(errors="replace").strip(), e.code
        except Exception as e:  # noqa: BLE001
            return False, f"/ready not answering: {e}"
        grpc = f"{h.address}:{lay.ports['server']}"
        if status != 200:
            return False, f"/ready {status} {body[:200]}; gRPC on {grpc}"
        # serving is not enough: clients reach it only once the balancers have marked it UP
        missing = []
        for b in lay.with_role("haproxy"):
            try:
                rows = haproxy.stats(lay, b)
            except Exception:  # noqa: BLE001
                rows = []
            if not any(r["pxname"] == "grpc_servers" and r["svname"] == h.name and r["status"] == "UP" for r in rows):
                missing.append(b.name)
        if missing:
            return False, f"/ready 200, but not UP in the balancer of {', '.join(missing)}; gRPC on {grpc}"
        return True, f"/ready 200 {body[:100]}, UP in every balancer; gRPC on {grpc}"


ROLES = {role: AppRole(role) for role in MODULES}
