"""Debian packages, and the "hosts": one network namespace per host, veth pairs on one bridge."""

from __future__ import annotations

import ipaddress
import os
import shutil

from common import ClusterError, Layout, log, run

PACKAGES = ["etcd-server", "etcd-client", "patroni", "haproxy", "nftables", "iputils-ping"]


def missing_packages() -> list[str]:
    out = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *PACKAGES], check=False).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in PACKAGES if p not in installed]


def ensure_packages() -> None:
    miss = missing_packages()
    if not miss:
        return
    log(f"installing Debian packages: {' '.join(miss)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["nice", "-n", "10", "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    r = run(cmd, check=False, env=env)
    if r.returncode != 0:
        log("apt-get install failed; running apt-get update once and retrying")
        run(["apt-get", "update", "-q"], check=False, env=env)
        r = run(cmd, check=False, env=env)
        if r.returncode != 0:
            raise ClusterError(f"apt-get install failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    for tool in ("etcd", "patroni", "haproxy", "nft"):
        if (
            not shutil.which(tool)
            and not os.path.exists(f"/usr/bin/{tool}")
            and not os.path.exists(f"/usr/sbin/{tool}")
        ):
            raise ClusterError(f"{tool} still missing after apt-get install")


# ---------------------------------------------------------------- network


def _netns_list() -> set[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(cmd, check=False).returncode == 0


def _addrs(dev: str, netns: str | None = None) -> set[str]:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-o", "-4", "addr", "show", "dev", dev]
    out = run(cmd, check=False).stdout
    return {line.split()[3] for line in out.splitlines()}


def check_subnet_free(lay: Layout) -> None:
    """The subnet must be ours alone: no other root-namespace interface may hold an address in it."""
    net = ipaddress.ip_network(lay.net["subnet"])
    out = run(["ip", "-o", "-4", "addr", "show"], check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        dev, cidr = parts[1], parts[3]
        if dev != lay.net["bridge"] and ipaddress.ip_interface(cidr).network.overlaps(net):
            raise ClusterError(f"{cidr} on {dev} overlaps the cluster subnet {net}; refusing to route it")


def up(lay: Layout) -> None:
    br, prefixlen = lay.net["bridge"], ipaddress.ip_network(lay.net["subnet"]).prefixlen
    check_subnet_free(lay)
    if not _link_exists(br):
        log(f"creating bridge {br}")
        run(["ip", "link", "add", br, "type", "bridge"])
    braddr = f"{lay.net['bridge_address']}/{prefixlen}"
    if braddr not in _addrs(br):
        run(["ip", "addr", "add", braddr, "dev", br])
    run(["ip", "link", "set", br, "up"])
    existing = _netns_list()
    for h in lay.hosts:
        if h.netns not in existing:
            log(f"creating namespace {h.netns} ({h.address})")
            run(["ip", "netns", "add", h.netns])
        if not _link_exists("eth0", h.netns):
            if _link_exists(h.veth):  # a half-made pair from an interrupted run
                run(["ip", "link", "del", h.veth])
            run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns])
        run(["ip", "link", "set", h.veth, "master", br])
        run(["ip", "link", "set", h.veth, "up"])
        addr = f"{h.address}/{prefixlen}"
        if addr not in _addrs("eth0", h.netns):
            run(["ip", "-n", h.netns, "addr", "add", addr, "dev", "eth0"])
        run(["ip", "-n", h.netns, "link", "set", "eth0", "up"])
        run(["ip", "-n", h.netns, "link", "set", "lo", "up"])


def netns_pids(h) -> list[int]:
    out = run(["ip", "netns", "pids", h.netns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def down(lay: Layout) -> list[str]:
    """Remove namespaces (only when nothing runs in them), veths and the bridge. Returns problems."""
    problems = []
    existing = _netns_list()
    for h in lay.hosts:
        if h.netns in existing:
            pids = netns_pids(h)
            if pids:
                problems.append(f"namespace {h.netns} still has processes {pids}; left in place")
                continue
            run(["ip", "netns", "del", h.netns])
        if _link_exists(h.veth):
            run(["ip", "link", "del", h.veth], check=False)
    if not problems and _link_exists(lay.net["bridge"]):
        run(["ip", "link", "del", lay.net["bridge"]])
    return problems


def status(lay: Layout) -> dict[str, bool]:
    existing = _netns_list()
    res = {}
    for h in lay.hosts:
        ok = h.netns in existing and f"{h.address}/{ipaddress.ip_network(lay.net['subnet']).prefixlen}" in _addrs(
            "eth0", h.netns
        )
        res[h.name] = ok
    return res
