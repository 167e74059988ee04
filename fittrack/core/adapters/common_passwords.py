"""The list of common passwords shipped with the package (fittrack/core/adapters/data/common-passwords.txt)."""

from __future__ import annotations

import threading
from pathlib import Path

from fittrack.core.ports import CommonPasswords

LIST_PATH = Path(__file__).with_name("data") / "common-passwords.txt"


class CommonPasswordList(CommonPasswords):
    """Read on first use, not at start-up: a process that never sets a password never pays for it."""

    def __init__(self, path: Path = LIST_PATH) -> None:
        self._path = path
        self._words: frozenset[str] | None = None
        self._lock = threading.Lock()

    def __contains__(self, password: str) -> bool:
        return password.casefold() in self._load()

    def __len__(self) -> int:
        return len(self._load())

    def _load(self) -> frozenset[str]:
        if self._words is None:
            with self._lock:
                if self._words is None:
                    lines = self._path.read_text(encoding="utf-8").splitlines()
                    self._words = frozenset(line.casefold() for line in lines if line and not line.startswith("# "))
        return self._words
