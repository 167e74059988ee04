"""Shared pieces of the cluster script: the layout, paths, secrets, processes, polling."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # repository root: infra/cluster/../..
VAR = ROOT / "var"
CLUSTER_VAR = VAR / "cluster"
LAYOUT_FILE = HERE / "layout.toml"


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    pass


@dataclass
class Host:
    name: str
    address: str
    roles: list[str]
    netns: str
    veth: str

    def dir(self, role: str) -> Path:
        return CLUSTER_VAR / self.name / role


@dataclass
class Layout:
    raw: dict
    hosts: list[Host] = field(default_factory=list)

    @property
    def net(self) -> dict:
        return self.raw["network"]

    @property
    def ports(self) -> dict:
        return self.raw["ports"]

    def section(self, name: str) -> dict:
        return self.raw.get(name, {})

    def with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ClusterError(f"no host {name} in the layout")


ROLES = ("etcd", "postgres", "haproxy", "kafka", "ferretdb", "server", "persister", "dispatcher", "evaluator")


def load_layout(path: Path = LAYOUT_FILE) -> Layout:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    net = ipaddress.ip_network(raw["network"]["subnet"])
    prefix = raw["network"]["prefix"]
    lay = Layout(raw)
    seen = {raw["network"]["bridge_address"]}
    if ipaddress.ip_address(raw["network"]["bridge_address"]) not in net:
        raise ClusterError("bridge_address is outside the subnet")
    for name, h in raw["hosts"].items():
        addr = h["address"]
        if ipaddress.ip_address(addr) not in net:
            raise ClusterError(f"{name}: {addr} is outside {net}")
        if addr in seen:
            raise ClusterError(f"{name}: address {addr} used twice")
        seen.add(addr)
        bad = [r for r in h["roles"] if r not in ROLES]
        if bad:
            raise ClusterError(f"{name}: unknown roles {bad}")
        lay.hosts.append(Host(name, addr, list(h["roles"]), prefix + name, prefix + name))
    if len(lay.hosts) > 9 or any(len(h.veth) > 15 for h in lay.hosts):
        raise ClusterError("interface names must fit in 15 characters")
    return lay


# ---------------------------------------------------------------- secrets


def secret(name: str) -> str:
    """Passwords made once per checkout, kept in var/cluster/secrets.json (0600)."""
    f = CLUSTER_VAR / "secrets.json"
    data = json.loads(f.read_text()) if f.exists() else {}
    if name not in data:
        data[name] = secrets.token_hex(16)
        CLUSTER_VAR.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.chmod(0o600)
        tmp.replace(f)
    return data[name]


# ---------------------------------------------------------------- processes


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pidfile_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in pidfile if that process is alive and its command line contains marker."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    if alive(pid) and marker in cmdline(pid):
        return pid
    return None


def spawn(host: Host, argv: list[str], logfile: Path, pidfile: Path, user: str | None = None, env=None) -> int:
    """Start argv inside host's namespace, niced, in its own session. Every wrapper execs, so the
    pid written to pidfile is the daemon's own."""
    nice = str(load_layout().raw["process"]["nice"])
    cmd = ["ip", "netns", "exec", host.netns, "nice", "-n", nice]
    if user:
        cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    cmd += argv
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        p = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(logfile.parent),
            close_fds=True,
        )
    pidfile.write_text(f"{p.pid}\n")
    return p.pid


def terminate(pid: int, name: str, timeout: float = 60, sig: int = signal.SIGTERM) -> None:
    if not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_for(lambda: not alive(pid), timeout, f"{name} (pid {pid}) to exit", fail=False):
        log(f"{name} (pid {pid}) did not stop within {timeout:.0f}s: SIGKILL")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for(lambda: not alive(pid), 15, f"{name} (pid {pid}) to die")


def wait_for(pred, timeout: float, what: str, fail: bool = True, interval: float = 0.3):
    """Poll pred() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:  # noqa: BLE001 - a probe that raises is simply "not yet"
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            if fail:
                raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
            return None
        time.sleep(interval)


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no {path})"


def chown_tree(path: Path, user: str) -> None:
    run(["chown", "-R", f"{user}:{user}", str(path)])


def make_traversable(path: Path, user: str) -> None:
    """user must be able to reach path: add o+x to parents that lack it."""
    d = path
    while d != d.parent:
        d = d.parent
        if run(["runuser", "-u", user, "--", "test", "-x", str(d)], check=False).returncode != 0:
            log(f"chmod o+x {d} (the {user} user must traverse it)")
            d.chmod(d.stat().st_mode | 0o001)
