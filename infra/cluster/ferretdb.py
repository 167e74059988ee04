"""FerretDB 1.x per host (var/bin/ferretdb-launcher, built by infra/services.sh's step), stateless on top
of PostgreSQL through the host's own HAProxy write port, so it follows the Patroni leader."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from urllib.parse import quote

from common import HERE, VAR, ClusterError, Host, Layout, log, pidfile_pid, secret, spawn, terminate

ROLE = "ferretdb"
SRC = HERE.parent / "ferretdb"
BIN = VAR / "bin" / "ferretdb-launcher"


def ensure_built() -> None:
    """Same build as infra/services.sh's ferret_ensure_built, run only when the binary is missing or stale."""
    srcs = [SRC / "main.go", SRC / "go.mod", SRC / "go.sum"]
    if BIN.exists() and all(BIN.stat().st_mtime > s.stat().st_mtime for s in srcs):
        return
    log(f"building the FerretDB launcher into {BIN}")
    BIN.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")
    r = subprocess.run(["go", "build", "-trimpath", "-o", f"{BIN}.tmp", "."], cwd=SRC, env=env,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise ClusterError(f"go build of the FerretDB launcher failed:\n{r.stderr[-3000:]}")
    os.replace(f"{BIN}.tmp", BIN)


def _pidfile(h: Host):
    return h.dir(ROLE) / "ferretdb.pid"


def pid(lay: Layout, h: Host) -> int | None:
    return pidfile_pid(_pidfile(h), f"-dump-dir {h.dir(ROLE)}")


def pg_url(lay: Layout) -> str:
    pg = lay.section("postgres")
    return (
        f"postgres://{pg['app_user']}:{quote(secret('pg_app'))}@127.0.0.1:{lay.ports['haproxy_pg_write']}/"
        f"{pg['ferret_database']}?sslmode=disable&pool_max_conns={lay.section('ferretdb')['pool_max_conns']}"
        "&plan_cache_mode=force_custom_plan"
    )


def start(lay: Layout, h: Host) -> bool:
    if pid(lay, h):
        return False
    d = h.dir(ROLE)
    d.mkdir(parents=True, exist_ok=True)
    # the URL (with its password) goes through the environment, not the command line
    env = dict(os.environ, FERRETDB_POSTGRESQL_URL=pg_url(lay))
    argv = [str(BIN), "-listen", f"0.0.0.0:{lay.ports['ferretdb']}", "-log-level", "warn", "-watchdog", "10s",
            "-dump-dir", str(d)]  # fmt: skip
    spawn(h, argv, d / "ferretdb.log", _pidfile(h), env=env)
    return True


def stop(lay: Layout, h: Host) -> None:
    p = pid(lay, h)
    if p:
        terminate(p, f"ferretdb on {h.name}", 30)
    _pidfile(h).unlink(missing_ok=True)


# ---------------------------------------------------------------- a minimal MongoDB OP_MSG


def _bson(doc: dict) -> bytes:
    out = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, bool):
            out += b"\x08" + key + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x10" + key + struct.pack("<i", v)
        else:
            s = str(v).encode() + b"\0"
            out += b"\x02" + key + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def command(address: str, port: int, doc: dict, timeout: float = 5.0) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + _bson(doc)
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(msg)
        buf = b""
        while len(buf) < 4 or len(buf) < struct.unpack_from("<i", buf)[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
    return buf[21:]  # header 16 + flags 4 + section kind 1: the reply document


def _ok(reply: bytes) -> bool:
    i = reply.find(b"\x01ok\x00")
    return i >= 0 and struct.unpack_from("<d", reply, i + 4)[0] == 1.0


def probe(lay: Layout, h: Host) -> tuple[bool, str]:
    if not pid(lay, h):
        return False, "not running"
    try:
        # listCollections reaches PostgreSQL (through the local HAProxy write port); ping alone would not
        reply = command(h.address, lay.ports["ferretdb"], {"listCollections": 1, "nameOnly": True, "$db": "fittrack"})
    except Exception as e:  # noqa: BLE001
        return False, f"no answer: {e}"
    if not _ok(reply):
        return False, "listCollections failed: " + reply[:200].decode(errors="replace")
    return True, f"answers on {h.address}:{lay.ports['ferretdb']}, backend via local HAProxy write port"
