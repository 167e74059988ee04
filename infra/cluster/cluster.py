#!/usr/bin/env python3
"""The highly available Fittrack layout on one machine: three "hosts" (network namespaces on a bridge)
running etcd, Patroni-managed PostgreSQL, HAProxy, Kafka (KRaft), FerretDB and Fittrack (servers behind
HAProxy gRPC balancers, persisters, dispatchers, evaluators) as infra/cluster/layout.toml says.

    python3 infra/cluster/cluster.py up|down|status
    python3 infra/cluster/cluster.py docs [--check]   # the layout section of infra/cluster/README.md
    python3 infra/cluster/cluster.py latency <host> <ms> [--reset-existing] | off   # a slow link (latency.py)
    python3 infra/cluster/cluster.py cut|loss|kill|heal <host> ...   # other faults (faults.py)

Standard library only. Must run as root (namespaces, apt, the postgres user). Data and logs under
var/cluster/<host>/<role>/.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app_roles  # noqa: E402
import etcd  # noqa: E402
import faults  # noqa: E402
import ferretdb  # noqa: E402
import haproxy  # noqa: E402
import hosts  # noqa: E402
import kafka  # noqa: E402
import latency  # noqa: E402
import patroni  # noqa: E402
from common import (  # noqa: E402
    CLUSTER_VAR,
    HERE,
    ClusterError,
    Layout,
    alive,
    cmdline,
    load_layout,
    log,
    secret,
    terminate,
    wait_for,
)  # noqa: E402

MODULES = {
    "etcd": etcd,
    "postgres": patroni,
    "haproxy": haproxy,
    "kafka": kafka,
    "ferretdb": ferretdb,
    **app_roles.ROLES,
}
ORDER = ("etcd", "postgres", "haproxy", "kafka", "ferretdb", *app_roles.ROLES)
APP_ROLES = tuple(app_roles.ROLES)
FAULTS = ("cut", "loss", "kill", "heal")


def _each(fn, items):
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as ex:
        return list(ex.map(fn, items))


def _wait_role(lay: Layout, role: str, timeout: float) -> None:
    mod = MODULES[role]
    members = lay.with_role(role)
    t0 = time.monotonic()

    missed: dict[str, int] = {}

    def all_ok():
        for h in members:
            # Two polls in a row: while a wrapper (ip netns exec, nice) execs the daemon, its
            # /proc/<pid>/cmdline can read empty for an instant, and a loaded machine makes that instant longer.
            missed[h.name] = 0 if mod.pid(lay, h) else missed.get(h.name, 0) + 1
            if missed[h.name] >= 2:
                raise ClusterError(f"{role} on {h.name} exited; see {h.dir(role)}")
        return all(mod.probe(lay, h)[0] for h in members)

    def check():
        try:
            return all_ok()
        except ClusterError:
            raise
        except Exception:  # noqa: BLE001
            return False

    deadline = t0 + timeout
    while not check():
        if time.monotonic() > deadline:
            detail = "; ".join(f"{h.name}: {mod.probe(lay, h)[1]}" for h in members)
            raise ClusterError(f"{role} not healthy within {timeout:.0f}s ({detail})")
        time.sleep(0.5)
    log(f"{role} healthy on {', '.join(h.name for h in members)} ({time.monotonic() - t0:.1f}s)")


def _start_role(lay: Layout, role: str) -> None:
    started = [h.name for h in lay.with_role(role) if MODULES[role].start(lay, h)]
    if started:
        log(f"started {role} on {', '.join(started)}")


def cmd_up(lay: Layout) -> int:
    t0 = time.monotonic()
    timeout = float(lay.raw["process"]["start_timeout"])
    hosts.ensure_packages()
    kafka.ensure_libs()
    ferretdb.ensure_built()
    hosts.up(lay)
    _start_role(lay, "etcd")
    _start_role(lay, "kafka")  # independent of etcd; JVM start-up overlaps with the rest
    _wait_role(lay, "etcd", timeout)
    _start_role(lay, "postgres")
    _start_role(lay, "haproxy")
    _wait_role(lay, "postgres", timeout)
    if lay.section("postgres").get("synchronous_mode") and len(lay.with_role("postgres")) > 1:
        # Patroni names the synchronous standby on the leader's next loop (up to loop_wait seconds)
        t1 = time.monotonic()
        names = wait_for(lambda: patroni.sync_replicas(lay), timeout, "Patroni to name a synchronous standby")
        log(f"synchronous standby: {', '.join(names)} ({time.monotonic() - t1:.1f}s)")
    _wait_role(lay, "haproxy", timeout)
    patroni.bootstrap_app(lay, lay.with_role("haproxy")[0])
    _start_role(lay, "ferretdb")
    _wait_role(lay, "ferretdb", timeout)
    _wait_role(lay, "kafka", timeout)
    write_env(lay)
    log(f"backing services up in {time.monotonic() - t0:.1f}s")
    apps = [r for r in APP_ROLES if lay.with_role(r)]
    if apps:
        # the migration once per `up`, before any Fittrack process starts (it also refreshes the FerretDBs)
        app_roles.prepare(lay)
        for role in apps:
            _start_role(lay, role)
        for role in apps:
            _wait_role(lay, role, timeout)
    log(f"cluster up in {time.monotonic() - t0:.1f}s")
    return cmd_status(lay)


def write_env(lay: Layout) -> None:
    """var/cluster/<host>.env: the settings a Fittrack process inside that host's namespace uses
    (its local HAProxy and FerretDB on 127.0.0.1, every Kafka broker)."""
    from urllib.parse import quote

    pg, p = lay.section("postgres"), lay.ports
    cred = f"{pg['app_user']}:{quote(secret('pg_app'))}"
    brokers = ",".join(f"{m.address}:{p['kafka']}" for m in lay.with_role("kafka"))
    for h in lay.hosts:
        lines = [
            f"FITTRACK_PG_DSN=postgresql://{cred}@127.0.0.1:{p['haproxy_pg_write']}/{pg['app_database']}",
            f"FITTRACK_PG_REPLICA_DSN=postgresql://{cred}@127.0.0.1:{p['haproxy_pg_read']}/{pg['app_database']}",
            f"FITTRACK_KAFKA_BOOTSTRAP={brokers}",
        ]
        if "ferretdb" in h.roles:
            lines += [
                f"FITTRACK_MONGO_URI=mongodb://127.0.0.1:{p['ferretdb_balancer']}/",
                f"FITTRACK_FERRETDB_PG_DSN=postgresql://{cred}@127.0.0.1:{p['haproxy_pg_write']}/{pg['ferret_database']}",
            ]
        f = CLUSTER_VAR / f"{h.name}.env"
        tmp = f.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)
        tmp.replace(f)


def _ours(pid: int) -> bool:
    return str(CLUSTER_VAR) in cmdline(pid)


def cmd_down(lay: Layout) -> int:
    t0 = time.monotonic()
    for h in lay.hosts:  # a latency fault's Toxiproxy and nft table go first, while the namespaces exist
        latency.remove(lay, h.name)
    for role in reversed(ORDER):
        mod = MODULES[role]
        _each(lambda h, mod=mod: mod.stop(lay, h), lay.with_role(role))
    # Left-overs inside our namespaces that belong to this cluster (e.g. a postmaster whose Patroni was
    # SIGKILLed): postmasters get SIGINT (fast shutdown), the rest SIGTERM. Anything else is reported.
    for h in lay.hosts:
        for p in patroni.stray_postmasters(lay, h):
            terminate(p, f"stray postmaster on {h.name}", 30, sig=2)
        try:
            pids = hosts.netns_pids(h)
        except Exception:  # noqa: BLE001
            pids = []
        for p in pids:
            if alive(p) and _ours(p):
                terminate(p, f"left-over process {p} on {h.name}", 30)
    problems = hosts.down(lay)
    for msg in problems:
        log(msg)
    log(f"cluster down in {time.monotonic() - t0:.1f}s")
    return 1 if problems else 0


def _latency_made(lay: Layout, h) -> list[str]:
    try:
        ms = latency.active(lay, h.name)
    except ClusterError as e:
        return [f"latency, broken: {e}"]
    return [f"latency {ms} ms"] if ms else []


def cmd_status(lay: Layout) -> int:
    ok_all = True
    net = hosts.status(lay)
    for h in lay.hosts:
        ok = net[h.name]
        made = faults.active(h) + _latency_made(lay, h) if ok else []
        ok_all &= ok and not made
        state = "FAULTED" if made else "healthy" if ok else "DOWN"
        detail = f"; faults made: {', '.join(made)} (cluster.py heal {h.name})" if made else ""
        print(f"{h.name:3} {'host':10} {state:8} namespace {h.netns}, {h.address}{detail}")
        for role in ORDER:
            if role not in h.roles:
                continue
            try:
                ok, detail = MODULES[role].probe(lay, h) if net[h.name] else (False, "no namespace")
            except Exception as e:  # noqa: BLE001
                ok, detail = False, f"probe failed: {e}"
            ok_all &= ok
            print(f"{h.name:3} {role:10} {'healthy' if ok else 'DOWN':8} {detail}")
    sys.stdout.flush()
    return 0 if ok_all else 1


# ---------------------------------------------------------------- README section from layout.toml

BEGIN, END = "<!-- layout:begin (generated by `cluster.py docs` from layout.toml) -->", "<!-- layout:end -->"


def layout_markdown(lay: Layout) -> str:
    p = lay.ports
    roles = list(ORDER)
    lines = [
        f"Subnet `{lay.net['subnet']}`, bridge `{lay.net['bridge']}` (root side `{lay.net['bridge_address']}`).",
        "",
        "| host | namespace | address | " + " | ".join(roles) + " |",
        "|---|---|---|" + "---|" * len(roles),
    ]
    for h in lay.hosts:
        cells = ["yes" if r in h.roles else "-" for r in roles]
        lines.append(f"| {h.name} | `{h.netns}` | `{h.address}` | " + " | ".join(cells) + " |")
    lines += ["", "| port | what |", "|---|---|"]
    lines += [f"| {v} | {k} |" for k, v in p.items()]
    return "\n".join(lines)


def cmd_docs(lay: Layout, check: bool) -> int:
    readme = HERE / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ClusterError(f"{readme} lacks the layout markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{layout_markdown(lay)}\n{END}{tail}"
    if check:
        if new != text:
            print("infra/cluster/README.md is out of date with layout.toml: run cluster.py docs", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "down", "status", "docs", "latency", *FAULTS):
        print(__doc__, file=sys.stderr)
        return 2
    lay = load_layout()
    if argv[0] == "docs":
        return cmd_docs(lay, "--check" in argv)
    if os.geteuid() != 0:
        print("cluster.py must run as root", file=sys.stderr)
        return 2
    if argv[0] == "status":
        return cmd_status(lay)
    if argv[0] == "latency":
        return latency.cli(lay, argv[1:])
    if argv[0] in FAULTS:
        CLUSTER_VAR.mkdir(parents=True, exist_ok=True)
        with open(CLUSTER_VAR / ".lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)  # not while up or down runs
            return faults.cli(lay, MODULES, ORDER, argv)
    CLUSTER_VAR.mkdir(parents=True, exist_ok=True)
    with open(CLUSTER_VAR / ".lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            return cmd_up(lay) if argv[0] == "up" else cmd_down(lay)
        except ClusterError as e:
            log(f"ERROR: {e}")
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
