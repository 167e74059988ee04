"""What the benchmarks share: server and anchor subprocesses, /proc figures, accounts, the JSON line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fittrack.generated.v1 import account_pb2, account_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password"
STARTUP_SECONDS = 60


def emit(figures: dict) -> None:
    """The benchmark's one JSON line on stdout."""
    print(json.dumps(figures), flush=True)


@contextlib.contextmanager
def work_directory(name: str, keep: Path | None) -> Iterator[Path]:
    """Where the processes' logs and data go: a new directory under `keep`, kept, or a temporary directory."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=keep))
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as path:
        yield Path(path)


def report_failure(log_dir: Path, exception: bool = True) -> None:
    """On stderr: the exception being handled and the last lines of every process's log."""
    if exception:
        traceback.print_exc()
    for log in sorted(log_dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-20:]
        print(f"--- {log.name} (last lines)", *lines, sep="\n", file=sys.stderr)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def memory_mb(pid: int) -> dict[str, float]:
    """The process's current (VmRSS) and peak (VmHWM) resident set size, in MiB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (/proc/PID/stat utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_open_files_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Process:
    """A server-like subprocess (Fittrack's server, a persister, the anchor) and its log file."""

    name: str
    popen: subprocess.Popen
    log: Path
    address: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path, address: str = "") -> Process:
    log = log_dir / f"{name}.log"
    with log.open("wb") as output:
        popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Process(name, popen, log, address)


async def start_server(extra_env: dict[str, str], log_dir: Path, name: str = "server") -> Process:
    """`python -m fittrack.app.server` on a free loopback port with fast bcrypt, once it reports SERVING."""
    address = f"127.0.0.1:{free_port()}"
    (log_dir / "data").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "FITTRACK_BCRYPT_ROUNDS": "4",
        # The production profile refuses fewer than 12 rounds unless told this is a test stack.
        "FITTRACK_ALLOW_LOW_BCRYPT_ROUNDS": "1",
        "FITTRACK_LOG_LEVEL": "WARNING",
        "FITTRACK_DATA_DIR": str(log_dir / "data"),
        **extra_env,
        "FITTRACK_LISTEN": address,
    }
    process = spawn(name, ["-m", "fittrack.app.server"], env, log_dir, address)
    await wait_serving(process)
    return process


async def start_anchor(log_dir: Path) -> Process:
    """The bare transport anchor (bench/anchor.py) in its own process."""
    address = f"127.0.0.1:{free_port()}"
    process = spawn("anchor", ["-m", "bench.anchor", "--listen", address], dict(os.environ), log_dir, address)
    await wait_serving(process)
    return process


async def wait_serving(process: Process, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} at {process.address} not serving after {timeout:.0f} s")
            await asyncio.sleep(0.05)


async def log_in_users(
    address: str, usernames: Iterable[str], concurrency: int = 16
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Register each user and log them in; their auth metadata by username."""
    limit = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        accounts = account_pb2_grpc.AccountServiceStub(channel)

        async def one(username: str) -> tuple[str, tuple[tuple[str, str], ...]]:
            async with limit:
                await accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))
                login = await accounts.Login(account_pb2.LoginRequest(username=username, password=PASSWORD))
            return username, (("authorization", f"Bearer {login.access_token}"),)

        return dict(await asyncio.gather(*(one(name) for name in usernames)))


def channel_options(max_message_bytes: int = 4 * 1024 * 1024) -> list[tuple[str, int]]:
    """A channel with its own TCP connection (not shared with other channels to the same address)."""
    return [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
