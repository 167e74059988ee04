"""Patroni 3.0.2 (Debian) managing PostgreSQL 15, with etcd's v2 API as its DCS.

Debian's 3.0.2 with the `etcd3:` section took the leader key back unconditionally when a cut-off
leader's host came back (split brain, acknowledged writes lost; fixed upstream after 3.0.2), so
this uses the `etcd:` (v2) section. Runs as the postgres user.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request

from common import (
    ClusterError,
    Host,
    Layout,
    chown_tree,
    log,
    make_traversable,
    pidfile_pid,
    run,
    secret,
    spawn,
    terminate,
)  # fmt: skip

ROLE = "postgres"
PG_USER = "postgres"


def _pidfile(h: Host):
    return h.dir(ROLE) / "patroni.pid"


def _config_path(h: Host):
    return h.dir(ROLE) / "patroni.yml"


def pid(lay: Layout, h: Host) -> int | None:
    return pidfile_pid(_pidfile(h), str(_config_path(h)))


def config(lay: Layout, h: Host) -> dict:
    p, pg, d = lay.ports, lay.section("postgres"), h.dir(ROLE)
    etcd_hosts = ",".join(f"{m.address}:{p['etcd_client']}" for m in lay.with_role("etcd"))
    subnet = lay.net["subnet"]
    return {
        "scope": pg["scope"],
        "namespace": "/service/",
        "name": h.name,
        "log": {
            "level": "INFO",
            "dir": str(d / "log"),
            "file_size": 10_000_000,
            "file_num": 3,
            # every HAProxy check ends with a reset, which patroni.api logs as a WARNING with a traceback
            "loggers": {"patroni.api": "ERROR"},
        },
        "restapi": {"listen": f"0.0.0.0:{p['patroni_rest']}", "connect_address": f"{h.address}:{p['patroni_rest']}"},
        "etcd": {"hosts": etcd_hosts},
        "bootstrap": {
            "dcs": {
                "ttl": pg["ttl"],
                "loop_wait": pg["loop_wait"],
                "retry_timeout": pg["retry_timeout"],
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": bool(pg["synchronous_mode"]),
                "synchronous_mode_strict": False,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_log_hints": "on",
                        "max_connections": pg["max_connections"],
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "256MB",
                        "hot_standby": "on",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            "pg_hba": [
                "local all all trust",
                f"host replication replicator {subnet} scram-sha-256",
                "host replication replicator 127.0.0.1/32 scram-sha-256",
                f"host all all {subnet} scram-sha-256",
                "host all all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "postgresql": {
            "listen": f"{h.address},127.0.0.1:{p['postgres']}",
            "connect_address": f"{h.address}:{p['postgres']}",
            "data_dir": str(d / "data"),
            "bin_dir": f"/usr/lib/postgresql/{pg['version']}/bin",
            "pgpass": str(d / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": secret("pg_superuser")},
                "replication": {"username": "replicator", "password": secret("pg_replicator")},
                "rewind": {"username": "rewinder", "password": secret("pg_rewinder")},
            },
            "parameters": {
                # unix sockets are not isolated by network namespaces: one directory per member
                "unix_socket_directories": str(d),
                "shared_buffers": pg["shared_buffers"],
                "logging_collector": "on",
                "log_directory": str(d / "log"),
                "log_filename": "postgresql-%a.log",
                "log_truncate_on_rotation": "on",
                "log_min_messages": "warning",
                "ssl": "off",
                # With synchronous_mode a replica that vanishes (host cut off, crash) blocks commits until the
                # leader's walsender notices (default 60 s) and Patroni's next loop drops it from
                # synchronous_standby_names; 36 s was measured with the defaults. Notice in seconds.
                "wal_sender_timeout": "5s",
                "wal_receiver_timeout": "5s",
                "tcp_keepalives_idle": 5,
                "tcp_keepalives_interval": 2,
                "tcp_keepalives_count": 3,
            },
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def start(lay: Layout, h: Host) -> bool:
    if pid(lay, h):
        return False
    d = h.dir(ROLE)
    (d / "log").mkdir(parents=True, exist_ok=True)
    make_traversable(d, PG_USER)
    cfg = _config_path(h)
    cfg.write_text(json.dumps(config(lay, h), indent=2) + "\n")  # JSON is YAML
    cfg.chmod(0o600)
    chown_tree(d, PG_USER)
    env = {
        "PATH": "/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(d), "USER": PG_USER, "LOGNAME": PG_USER, "LANG": "C.UTF-8",
    }  # fmt: skip
    spawn(h, ["/usr/bin/patroni", str(cfg)], d / "patroni.out", _pidfile(h), user=PG_USER, env=env)
    return True


def stop(lay: Layout, h: Host) -> None:
    p = pid(lay, h)
    if p:
        terminate(p, f"patroni on {h.name}", 90)  # stops PostgreSQL cleanly first
    _pidfile(h).unlink(missing_ok=True)


def rest(lay: Layout, h: Host, path: str = "/patroni", timeout: float = 2.0) -> tuple[int, dict]:
    url = f"http://{h.address}:{lay.ports['patroni_rest']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def probe(lay: Layout, h: Host) -> tuple[bool, str]:
    if not pid(lay, h):
        return False, "not running"
    try:
        _, st = rest(lay, h)
    except Exception as e:  # noqa: BLE001
        return False, f"REST API not answering: {e}"
    role, state = st.get("role", "?"), st.get("state", "?")
    role = "leader" if role in ("master", "primary") else role
    detail = f"{role}, {state}, timeline {st.get('timeline', '?')}"
    if role == "leader":
        reps = st.get("replication") or []
        detail += ", replicas: " + (
            ", ".join(f"{r.get('application_name')} {r.get('state')}/{r.get('sync_state')}" for r in reps) or "none"
        )
        return state == "running", detail
    if role == "replica":
        # streaming from the leader? (3.0.2 reports state "running" either way)
        code, _ = rest(lay, h, "/replica")
        return state == "running" and code == 200, detail
    return False, detail


def sync_replicas(lay: Layout) -> list[str]:
    """Members the leader reports as synchronous standbys (streaming, sync_state sync)."""
    h = leader(lay)
    if not h:
        return []
    _, st = rest(lay, h)
    return [r.get("application_name") for r in st.get("replication") or []
            if r.get("state") == "streaming" and r.get("sync_state") in ("sync", "quorum")]  # fmt: skip


def leader(lay: Layout) -> Host | None:
    for h in lay.with_role(ROLE):
        try:
            code, _ = rest(lay, h, "/primary", timeout=1.5)
        except Exception:  # noqa: BLE001
            continue
        if code == 200:
            return h
    return None


def psql(lay: Layout, h: Host, port: int, sql: str, db: str = "postgres") -> str:
    """Run SQL as the superuser through host h's address and the given port (the HAProxy write port)."""
    env = dict(os.environ, PGPASSWORD=secret("pg_superuser"), PGCONNECT_TIMEOUT="5")
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", h.address, "-p", str(port), "-U", "postgres",
           "-d", db]  # fmt: skip
    r = subprocess.run(cmd, input=sql, text=True, capture_output=True, env=env, timeout=30)
    if r.returncode != 0:
        raise ClusterError(f"psql via {h.address}:{port} failed: {r.stderr.strip()}")
    return r.stdout


def bootstrap_app(lay: Layout, via: Host) -> None:
    """Create the application role and databases through the write port (so on the leader)."""
    pg = lay.section("postgres")
    user, pw = pg["app_user"], secret("pg_app")
    port = lay.ports["haproxy_pg_write"]
    psql(
        lay,
        via,
        port,
        f"""
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '{user}', '{pw}')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') \\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', '{user}', '{pw}') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', '{pg["app_database"]}', '{user}')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{pg["app_database"]}') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', '{pg["ferret_database"]}', '{user}')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{pg["ferret_database"]}') \\gexec
""",
    )
    log(f"role {user} and databases {pg['app_database']}, {pg['ferret_database']} present on the leader")


def stray_postmasters(lay: Layout, h: Host) -> list[int]:
    """Postmasters serving this member's data dir whose Patroni is gone (e.g. Patroni was SIGKILLed)."""
    data = str(h.dir(ROLE) / "data")
    out = run(["pgrep", "-f", f"postgres -D {data}"], check=False).stdout
    return [int(x) for x in out.split()]
