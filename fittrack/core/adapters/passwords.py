"""bcrypt password hashing."""

from __future__ import annotations

import base64
import hashlib

import bcrypt

from fittrack.core.ports import PasswordHasher


class BcryptHasher(PasswordHasher):
    """bcrypt reads only the first 72 bytes of its input, so the password is
    first reduced with SHA-256 (base64 of the digest is 44 bytes): long
    passwords are never silently truncated, and NUL bytes cannot cut them short.
    """

    def __init__(self, rounds: int = 12) -> None:
        self._rounds = rounds
        self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(rounds))

    def hash(self, password: str) -> bytes:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(self._rounds))

    def verify(self, password: str, password_hash: bytes) -> bool:
        return bcrypt.checkpw(_prehash(password), password_hash)

    def waste_time(self, password: str) -> None:
        bcrypt.checkpw(_prehash(password), self._decoy)


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode()).digest())
