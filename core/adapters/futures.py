"""Settling the futures a reading bus hands out.

A stream that ends (a device dropping its connection) cancels the asyncio
future wrapping ours, which cancels ours too. The bus's threads must then
carry on: the batch is still stored, and only nobody hears about it.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, InvalidStateError


def resolve(future: Future, result) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_result(result)


def fail(future: Future, error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
