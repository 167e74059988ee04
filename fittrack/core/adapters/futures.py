"""The submission queue of a reading bus's worker thread, and settling the futures it hands out.

A stream that ends (a device dropping its connection) cancels the asyncio
future wrapping ours, which cancels ours too. The bus's threads must then
carry on: the batch is still stored, and only nobody hears about it.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError


def submission_groups(submissions: queue.SimpleQueue, limit: int | None = None) -> Iterator[list]:
    """Everything submitted since the last group (at most `limit`), group by group, until a None arrives.

    Taking all that waits at once is what lets one commit or one round of
    sends serve many streams.
    """
    while (first := submissions.get()) is not None:
        group = [first]
        while limit is None or len(group) < limit:
            try:
                item = submissions.get_nowait()
            except queue.Empty:
                break
            if item is None:
                submissions.put(None)  # stop after this group
                break
            group.append(item)
        yield group


def resolve(future: Future, result) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_result(result)


def fail(future: Future, error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
