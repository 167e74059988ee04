"""An exclusive hold on a file for the life of a process: the embedded server's claim on its SQLite file."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class HeldElsewhere(Exception):
    """Another process holds the lock; `holder` is its pid as it wrote it, or "" if unknown."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by process {holder or 'unknown'}")
        self.path = path
        self.holder = holder


class FileLock:
    """flock(2) on `path`: released by release(), or by the kernel when the process ends, however it ends.

    So a crashed server never leaves a stale lock behind, as a pid file would.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise HeldElsewhere(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
