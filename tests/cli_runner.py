"""The `fittrack` command run as a subprocess, the way people and scripts run it, and readers of its output."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Cli:
    """Runs `python -m fittrack.clients.cli` against the test server with its own config directory."""

    address: str
    config_home: Path

    @property
    def session_file(self) -> Path:
        return self.config_home / "fittrack" / "session.json"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "FITTRACK_SERVER"}
        env["XDG_CONFIG_HOME"] = str(self.config_home)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "fittrack.clients.cli", "--server", self.address, *args]

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, text=True, cwd=REPO_ROOT, env=self.env(), timeout=60
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"fittrack {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.ok("--json", *args))


def write_csv(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text("time,metric,value\n" + "".join(f"{t},{m},{v}\n" for t, m, v in rows))
    return path


def utc_today() -> date:
    return datetime.now(UTC).date()


def table(text: str) -> list[dict[str, str]]:
    """The rows of an aligned table as printed (a header line, then rows), keyed by the header's column names."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split()
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines[1:]]


def read_line(stream, timeout: float = 10.0) -> str:
    """The next line of a child's output, failing instead of hanging when none comes."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines and lines[0], f"no output within {timeout} s"
    return lines[0]


def in_a_terminal(
    argv: list[str], env: dict[str, str], stdout_too: bool = True
) -> tuple[subprocess.CompletedProcess, str]:
    """Run a command with stderr (and stdout, unless `stdout_too` is off) on a pseudo-terminal, as a person
    sees it; returns the finished process (stdout captured when not on the terminal) and what the terminal
    showed."""
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            argv, stdout=terminal if stdout_too else subprocess.PIPE, stderr=terminal, text=True,
            cwd=REPO_ROOT, env=env, timeout=60,
        )  # fmt: skip
        os.close(terminal)
        drawn = b""
        while True:
            try:
                piece = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other side is closed and everything was read
                break
            if not piece:
                break
            drawn += piece
    finally:
        os.close(controller)
    return result, drawn.decode()
