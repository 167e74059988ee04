"""Faults a real host suffers, done to the cluster's hosts: cut off, losing packets, a process killed.

The network faults are nftables tables inside the host's namespace, on its one uplink (eth0), so the
host's own loopback keeps working, as on a machine whose cable was pulled: its processes go on running
and talking to each other, and come back into the cluster when the table is deleted. This kernel has no
netem (infra-notes-ha.md), so loss is nftables' `numgen random` and latency is a proxy (latency.py).

    cut        every packet in or out of eth0 dropped (or only those of some ports: a broker cut off
               from the others while the rest of its host still answers)
    loss       a share of the packets in and out of eth0 dropped at random
    kill       SIGKILL to one role's process, as a crash or the OOM killer would
    heal       the tables deleted and every role of the host not running started again, as a service
               manager restarting what crashed would

Every fault is undone by `heal` or by `down`; deleting a namespace deletes its tables with it.
"""

from __future__ import annotations

import os
import signal
import sys

from common import ClusterError, Host, Layout, log, run

CUT, LOSS = "ft_cut", "ft_loss"  # nftables tables (family inet) inside the host's namespace


def _nft(h: Host, script: str) -> None:
    r = run(["ip", "netns", "exec", h.netns, "nft", "-f", "-"], check=False, input=script)
    if r.returncode != 0:
        raise ClusterError(f"nft in {h.netns} failed: {r.stderr.strip()}")


def _tables(h: Host) -> set[str]:
    out = run(["ip", "netns", "exec", h.netns, "nft", "list", "tables"], check=False).stdout
    return {line.split()[-1] for line in out.splitlines() if line.startswith("table inet ")}


def _replace(h: Host, table: str, rule_in: str, rule_out: str) -> None:
    """(Re)create one table: its two chains hold one rule each. Dropping the old table first in the same
    script makes the change atomic and applying the same fault twice harmless."""
    drop_old = f"delete table inet {table}\n" if table in _tables(h) else ""
    _nft(
        h,
        f"""{drop_old}table inet {table} {{
    chain in {{
        type filter hook input priority -10; policy accept;
        iifname "eth0" {rule_in}
    }}
    chain out {{
        type filter hook output priority -10; policy accept;
        oifname "eth0" {rule_out}
    }}
}}
""",
    )


def cut(lay: Layout, h: Host, port_names: list[str] | None = None) -> str:
    """Cut the host off (or, with port_names from layout.toml's [ports], only those ports: dropped as a
    destination both ways, so that nothing reaches them and they reach no peer). Returns what was done."""
    if not port_names:
        _replace(h, CUT, "drop", "drop")
        return f"{h.name} cut off from every other host"
    unknown = [name for name in port_names if name not in lay.ports]
    if unknown:
        raise ClusterError(f"no port named {', '.join(unknown)} in layout.toml (known: {', '.join(lay.ports)})")
    ports = ", ".join(str(lay.ports[name]) for name in port_names)
    _replace(h, CUT, f"tcp dport {{ {ports} }} drop", f"tcp dport {{ {ports} }} drop")
    return f"{h.name}'s {', '.join(port_names)} ({ports}) cut off from every other host"


def loss(lay: Layout, h: Host, percent: int) -> str:
    """Drop `percent` of the host's packets at random, in each direction (a round trip crosses two chances)."""
    if not 0 < percent < 100:
        raise ClusterError(f"loss must be a percentage from 1 to 99, not {percent}")
    rule = f"numgen random mod 100 < {percent} drop"
    _replace(h, LOSS, rule, rule)
    return f"{h.name} loses {percent}% of its packets in and out"


def kill(role_module, lay: Layout, h: Host, role: str) -> int:
    """SIGKILL the role's process on the host; its pid."""
    if role not in h.roles:
        raise ClusterError(f"{h.name} runs no {role} (it runs {', '.join(h.roles)})")
    pid = role_module.pid(lay, h)
    if not pid:
        raise ClusterError(f"{role} on {h.name} is not running")
    os.kill(pid, signal.SIGKILL)
    return pid


def heal_network(h: Host) -> list[str]:
    """Delete the host's fault tables; which there were."""
    present = sorted(_tables(h) & {CUT, LOSS})
    if present:
        _nft(h, "".join(f"delete table inet {table}\n" for table in present))
    return present


def active(h: Host) -> list[str]:
    """The network faults in force on the host, as `status` prints them."""
    named = {CUT: "cut", LOSS: "packet loss"}
    return [named[table] for table in sorted(_tables(h) & set(named))]


USAGE = """usage: cluster.py cut <host> [--ports NAME,...]   drop its traffic with the others (or only those ports')
       cluster.py loss <host> <percent>          drop that share of its packets, each way, at random
       cluster.py kill <host> <role>             SIGKILL the role's process there
       cluster.py heal <host>                    undo cut, loss and latency; start its roles not running"""


def cli(lay: Layout, modules: dict, order: tuple[str, ...], args: list[str]) -> int:
    """The fault subcommands: 2 for a usage error, 1 when the fault could not be made."""
    import latency

    names = [h.name for h in lay.hosts]
    if len(args) < 2 or args[1] not in names:
        print(f"{'no host ' + repr(args[1]) + ' (hosts: ' + ', '.join(names) + ')' if len(args) > 1 else ''}\n"
              f"{USAGE}".lstrip(), file=sys.stderr)  # fmt: skip
        return 2
    command, h, rest = args[0], lay.host(args[1]), args[2:]
    try:
        if command == "cut" and rest[:1] == ["--ports"] and len(rest) == 2:
            log(cut(lay, h, rest[1].split(",")))
        elif command == "cut" and not rest:
            log(cut(lay, h))
        elif command == "loss" and len(rest) == 1 and rest[0].isdigit():
            log(loss(lay, h, int(rest[0])))
        elif command == "kill" and len(rest) == 1 and rest[0] in modules:
            log(f"SIGKILL to {rest[0]} on {h.name} (pid {kill(modules[rest[0]], lay, h, rest[0])})")
        elif command == "heal" and not rest:
            undone = heal_network(h)
            try:
                slowed = latency.active(lay, h.name) is not None
            except ClusterError:  # half there: removing it is what heals it
                slowed = True
            if slowed:
                latency.remove(lay, h.name)
                undone.append("latency")
            started = [role for role in order if role in h.roles and modules[role].start(lay, h)]
            log(f"{h.name} healed: {', '.join(undone) or 'no network fault'} undone; "
                f"started {', '.join(started) or 'nothing'}")  # fmt: skip
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except ClusterError as error:
        log(f"ERROR: {error}")
        return 1
    return 0
