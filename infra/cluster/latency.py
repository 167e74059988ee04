"""Added latency on one host's links to the others (issue 12, item 8), through Toxiproxy.

This kernel has no netem (infra-notes-ha.md), so the delay is a userspace proxy: Toxiproxy's server, built
from the Go module proxy, runs inside the slow host's namespace. An nftables table there (`ip ft_latency`,
nat output hook) DNATs every new TCP connection its processes open to another host's address, on any port
of layout.toml's [ports], to a Toxiproxy proxy on the slow host's own address (one proxy per other host and
port). The proxy dials the real address and delays the bytes. The applications see nothing but the delay:
their socket's peer is still the other host's address, and the other host sees the slow host's address.

    h3 process --connect 198.18.0.11:7000--> [nft DNAT] --> 198.18.0.13:24006 (Toxiproxy, uid nobody)
        --delay--> 198.18.0.11:7000   (nobody's own connections are not DNATed)

What is and is not delayed:
- Only connections the slow host opens. Connections another host opens to it (h1 -> h3) are not touched.
- Only connections opened after `add`: established ones keep their direct path (conntrack NATs only the
  first packet of a connection) until they reconnect, unless `add(..., reset_existing=True)` (CLI
  `--reset-existing`) kills them with `ss -K`. `remove` breaks the ones that went through the proxy
  (they reconnect directly).
- Behind the proxy, a connection to a port nothing listens on is accepted and then closed, instead of
  refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import sys
import urllib.error
import urllib.request
from pathlib import Path

from common import (
    CLUSTER_VAR,
    VAR,
    ClusterError,
    Host,
    Layout,
    log,
    make_traversable,
    pidfile_pid,
    run,
    spawn,
    tail,
    terminate,
    wait_for,
)

ROLE = "latency"  # var/cluster/<host>/latency/
VERSION = "v2.12.0"  # github.com/Shopify/toxiproxy/v2, from the Go module proxy
PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"
BIN_DIR = VAR / "bin" / "toxiproxy"
BIN = BIN_DIR / "server"  # `go install` names the binary after the package directory
STAMP = BIN_DIR / "VERSION"  # the server prints "git" for -version when built by go install
TABLE = "ft_latency"  # nftables table (family ip) inside the slow host's namespace
USER, GROUP = "nobody", "nogroup"  # Toxiproxy's own uid: its upstream connections are exempt from the DNAT
OWN_PORTS = ("toxiproxy_api", "toxiproxy_proxies")  # [ports] keys of this module: never delayed
MAX_MS = 60_000


def ensure_built() -> Path:
    """Toxiproxy's server into var/bin/toxiproxy/, built only when missing or of another version; only the
    latency fault needs it, so `up` does not build it."""
    if BIN.exists() and STAMP.exists() and STAMP.read_text().strip() == VERSION:
        return BIN
    log(f"building Toxiproxy {VERSION} into {BIN_DIR}")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(BIN_DIR), GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    r = run(["go", "install", f"{PACKAGE}@{VERSION}"], check=False, env=env)
    if r.returncode != 0 or not BIN.exists():
        raise ClusterError(f"go install {PACKAGE}@{VERSION} failed:\n{r.stderr[-3000:]}")
    STAMP.write_text(VERSION + "\n")
    return BIN


# ---------------------------------------------------------------- what goes through which proxy


def delayed_ports(lay: Layout) -> dict[str, int]:
    """Every port of [ports] (the roles' ports on every host) except this module's own."""
    return {name: port for name, port in lay.ports.items() if name not in OWN_PORTS}


def proxies(lay: Layout, h: Host) -> list[dict]:
    """One proxy per (other host, port), listening on h's own address at toxiproxy_proxies + 100 * (the
    other host's index in the layout) + (the port's index in delayed_ports): fixed, so a restarted
    Toxiproxy and the nft table always agree."""
    base, out = lay.ports["toxiproxy_proxies"], []
    ports = list(delayed_ports(lay).items())
    if len(ports) > 100:
        raise ClusterError("more than 100 ports in layout.toml: the latency proxies' numbering needs a new scheme")
    for i, other in enumerate(lay.hosts):
        if other.name == h.name:
            continue
        for j, (name, port) in enumerate(ports):
            out.append(
                {
                    "name": f"{other.name}_{name}",
                    "listen": f"{h.address}:{base + 100 * i + j}",
                    "upstream": f"{other.address}:{port}",
                    "enabled": True,
                }
            )
    return out


def _halves(ms: int) -> dict[str, int]:
    """Half the delay on the way there, half on the way back, as on a slow link: a request and its answer
    together take ms more, whichever side speaks first."""
    return {"upstream": ms // 2, "downstream": ms - ms // 2}


# ---------------------------------------------------------------- the Toxiproxy process


def _dir(h: Host) -> Path:
    return h.dir(ROLE)


def _pidfile(h: Host) -> Path:
    return _dir(h) / "toxiproxy.pid"


def _config(h: Host) -> Path:
    return _dir(h) / "proxies.json"


def _api(lay: Layout, h: Host) -> str:
    """Toxiproxy's HTTP API on the host's address, which the root namespace reaches directly."""
    return f"http://{h.address}:{lay.ports['toxiproxy_api']}"


def pid(lay: Layout, h: Host) -> int | None:
    # the config path names the host's directory, so `down`'s sweep of left-overs recognises it too
    return pidfile_pid(_pidfile(h), f"-config {_config(h)}")


def _call(lay: Layout, h: Host, method: str, path: str, body=None, timeout: float = 5.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(_api(lay, h) + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise ClusterError(f"Toxiproxy on {h.name}: {method} {path}: {e.code} {e.read()[:300]!r}") from e
    return json.loads(raw) if raw.strip() else None


def _start(lay: Layout, h: Host) -> None:
    """Run Toxiproxy inside h's namespace as nobody, unless it runs. Its config file holds the proxies
    (no toxics), so a Toxiproxy restarted by hand listens where the nft table points."""
    d = _dir(h)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    tmp = _config(h).with_suffix(".tmp")
    tmp.write_text(json.dumps(proxies(lay, h), indent=1))
    tmp.chmod(0o644)
    tmp.replace(_config(h))
    if pid(lay, h):
        return
    make_traversable(_config(h), USER)
    make_traversable(BIN, USER)
    setpriv = ["setpriv", f"--reuid={USER}", f"--regid={GROUP}", "--clear-groups", "--"]
    api = ["-host", h.address, "-port", str(lay.ports["toxiproxy_api"])]
    argv = [*setpriv, str(BIN), *api, "-config", str(_config(h))]
    # LOG_LEVEL=error: at info it logs every accepted connection, at warn every connection its client closes first
    spawn(h, argv, d / "toxiproxy.log", _pidfile(h), env=dict(os.environ, LOG_LEVEL="error"))
    if not wait_for(lambda: pid(lay, h) and _call(lay, h, "GET", "/version", timeout=1), 30, "", fail=False):
        raise ClusterError(f"Toxiproxy on {h.name} did not answer on {_api(lay, h)}:\n{tail(d / 'toxiproxy.log')}")


def _configure(lay: Layout, h: Host, ms: int) -> None:
    """Proxies as proxies() says (POST /populate keeps identical ones and their connections), stale ones
    deleted, and on each a latency toxic per direction, created or updated to ms."""
    want = proxies(lay, h)
    _call(lay, h, "POST", "/populate", want)
    have = _call(lay, h, "GET", "/proxies")
    for name in set(have) - {p["name"] for p in want}:
        _call(lay, h, "DELETE", f"/proxies/{name}")
    for p in want:
        toxics = {t["name"] for t in have.get(p["name"], {}).get("toxics", [])}
        for stream, latency in _halves(ms).items():
            toxic = f"latency_{stream}"
            attrs = {"latency": latency, "jitter": 0}
            if toxic in toxics:
                _call(lay, h, "POST", f"/proxies/{p['name']}/toxics/{toxic}", {"attributes": attrs})
            else:
                body = {"name": toxic, "type": "latency", "stream": stream, "toxicity": 1.0, "attributes": attrs}
                _call(lay, h, "POST", f"/proxies/{p['name']}/toxics", body)


# ---------------------------------------------------------------- the nft table


def _nft(h: Host, *args: str, script: str | None = None):
    return run(["ip", "netns", "exec", h.netns, "nft", *args], check=False, input=script)


def _table_present(h: Host) -> bool:
    return _nft(h, "list", "table", "ip", TABLE).returncode == 0


def _table(lay: Layout, h: Host) -> str:
    """The nat output chain: Toxiproxy's own connections (its uid) pass untouched, every other new
    connection to an (other host, port) goes to that pair's proxy on h's own address. DNAT to the own
    address, not to 127.0.0.1: locally made packets with a non-loopback source DNATed to loopback would
    need route_localnet."""
    uid = pwd.getpwnam(USER).pw_uid
    rules = [f"        meta skuid {uid} return"]
    for p in proxies(lay, h):
        addr, port = p["upstream"].rsplit(":", 1)
        rules.append(f"        ip daddr {addr} tcp dport {port} dnat to {p['listen']}")
    drop_old = f"delete table ip {TABLE}\n" if _table_present(h) else ""
    body = "\n".join(rules)
    return f"""{drop_old}table ip {TABLE} {{
    chain out {{
        type nat hook output priority -100; policy accept;
{body}
    }}
}}
"""


# ---------------------------------------------------------------- the fault


def add(lay: Layout, host_name: str, ms: int, *, reset_existing: bool = False) -> None:
    """From now on, every TCP connection that a process in host_name opens to another host (any port of
    [ports]) takes ms more per round trip: ms // 2 on the way there (Toxiproxy's upstream) and the rest on
    the way back (downstream). Applying it again changes ms; open proxied connections keep going.
    Connections open before keep their direct path (Kafka's and etcd's between hosts live for hours);
    reset_existing kills them (ss -K) so that they reconnect through the proxies, which their clients see
    as one connection reset."""
    h = lay.host(host_name)
    if not 0 < ms <= MAX_MS:
        raise ClusterError(f"latency must be from 1 to {MAX_MS} ms, not {ms}")
    ensure_built()
    _start(lay, h)
    _configure(lay, h, ms)
    # the table last: the proxies it points at listen already, so no connection is refused on the way
    r = _nft(h, "-f", "-", script=_table(lay, h))
    if r.returncode != 0:
        raise ClusterError(f"nft in {h.netns} failed: {r.stderr.strip()}")
    log(f"{h.name}: {ms} ms added to every round trip of its new connections to the other hosts")
    if reset_existing:
        log(f"{h.name}: {_reset_direct(lay, h)} direct connections to the other hosts reset")


def _direct(lay: Layout, h: Host) -> list[str]:
    """ss filters, one per established connection from h's processes to another host's address on a
    delayed port that does not go through a proxy. A socket knows nothing of the DNAT (ss shows its
    original peer either way), so a connection counts as proxied when a proxy holds its other end: a
    socket on a proxy port whose peer is h's address and this connection's source port."""
    others = [o.address for o in lay.hosts if o.name != h.name]
    ports, nobody = set(delayed_ports(lay).values()), pwd.getpwnam(USER).pw_uid
    base = lay.ports["toxiproxy_proxies"]
    out = run(["ip", "netns", "exec", h.netns, "ss", "-tenH", "state", "established"], check=False).stdout
    candidates, proxied = [], set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        (_, sport), (peer, dport) = (_addr(a) for a in parts[2:4])
        uid = next((int(t[4:]) for t in parts[4:] if t.startswith("uid:")), 0)  # ss omits uid 0
        if uid == nobody and base <= sport < base + 100 * len(lay.hosts) and peer == h.address:
            proxied.add(dport)  # the proxy's side of an application's connection
        elif uid != nobody and peer in others and dport in ports:
            candidates.append((sport, peer, dport))
    return [f"( sport = :{s} and dst {a} and dport = :{d} )" for s, a, d in candidates if s not in proxied]


def _addr(text: str) -> tuple[str, int]:
    """ss's 198.18.0.11:9092 or, from Java's IPv6 sockets, [::ffff:198.18.0.11]:9092."""
    address, port = text.rsplit(":", 1)
    return address.strip("[]").removeprefix("::ffff:"), int(port)


def _reset_direct(lay: Layout, h: Host) -> int:
    """Kill h's direct connections to the other hosts (ss -K, this kernel has INET_DIAG_DESTROY); how many."""
    found = _direct(lay, h)
    for i in range(0, len(found), 20):  # a few connections per ss call keeps each filter short
        where = " or ".join(found[i : i + 20])
        run(["ip", "netns", "exec", h.netns, "ss", "-K", "-tH", "state", "established", f"( {where} )"], check=False)
    return len(found)


def remove(lay: Layout, host_name: str) -> None:
    """Undo add: Toxiproxy stops, which closes the connections going through it, then the table goes (new
    connections go direct again); their clients reconnect, directly. Harmless when nothing is there, even
    when the namespace is gone.

    In that order: Toxiproxy's closing packets reach the clients only while the table's NAT still
    translates them back. With the table gone first, a connection waiting for an answer (HAProxy holding
    a query for PostgreSQL) never heard of the close and stayed half-open, its query hung for good. For
    the moment between the two, a new connection is refused and retried."""
    h = lay.host(host_name)
    p = pid(lay, h)
    if p:
        terminate(p, f"toxiproxy on {h.name}", 15)
    _pidfile(h).unlink(missing_ok=True)
    if _table_present(h):
        r = _nft(h, "delete", "table", "ip", TABLE)
        if r.returncode != 0:
            raise ClusterError(f"nft delete table in {h.netns} failed: {r.stderr.strip()}")
        log(f"{h.name}: latency table removed")


def active(lay: Layout, host_name: str) -> int | None:
    """The ms added to host_name's round trips, or None when there is no latency fault. A table whose
    Toxiproxy is gone (connections to the other hosts would be refused) is an error, not None."""
    h = lay.host(host_name)
    if not _table_present(h):
        return None
    try:
        have = _call(lay, h, "GET", "/proxies", timeout=2) if pid(lay, h) else None
    except (OSError, ClusterError) as e:
        raise ClusterError(f"{h.name} has the latency table but Toxiproxy does not answer ({e})") from e
    if have is None:
        raise ClusterError(f"{h.name} has the latency table but no Toxiproxy: run `latency {h.name} off`")
    totals = {
        sum(t["attributes"]["latency"] for t in p.get("toxics", []) if t["type"] == "latency") for p in have.values()
    }
    if len(totals) != 1:
        raise ClusterError(f"{h.name}'s latency proxies disagree: {sorted(totals)} ms")
    return totals.pop() or None


# ---------------------------------------------------------------- command line


USAGE = """usage: cluster.py latency <host> <ms> [--reset-existing]
           add ms to each round trip of the connections host opens to the others from now on
           (--reset-existing: and reset its open ones, so that they reconnect through the delay)
       cluster.py latency <host> off
           remove it"""


def cli(lay: Layout, args: list[str]) -> int:
    """`cluster.py latency <host> <ms> [--reset-existing] | off`: 2 for a usage error, 1 when it failed."""
    names = [h.name for h in lay.hosts]
    reset = "--reset-existing" in args
    args = [a for a in args if a != "--reset-existing"]
    if len(args) != 2 or any(a.startswith("-") for a in args) or (reset and args[1] == "off"):
        print(USAGE, file=sys.stderr)
        return 2
    host, value = args
    if host not in names:
        print(f"latency: no host {host!r} (hosts: {', '.join(names)})\n{USAGE}", file=sys.stderr)
        return 2
    if value != "off" and not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_MS):
        print(f"latency: {value!r} is neither off nor a whole number of ms from 1 to {MAX_MS}\n{USAGE}",
              file=sys.stderr)  # fmt: skip
        return 2
    CLUSTER_VAR.mkdir(parents=True, exist_ok=True)
    with open(CLUSTER_VAR / ".lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)  # as up and down do: not while one of them runs
        try:
            if value == "off":
                remove(lay, host)
            else:
                add(lay, host, int(value), reset_existing=reset)
        except ClusterError as e:
            log(f"ERROR: {e}")
            return 1
    return 0
