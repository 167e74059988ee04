"""Which batches of a device the server already holds: a sliding window over batch sequences.

A device numbers its batches 1, 2, 3, ... and resends what it has no ack for.
Batches may become durable out of order (several are in flight on a stream,
and one of them may fail while a later one succeeds), so "at or below the
highest sequence seen" is not the same as "held". The cursor keeps the
highest durable sequence and, as a bitmap, which of the WINDOW sequences
below it are held too (the anti-replay window of IPsec, RFC 4303 3.4.3).

Sequences further back than the window are treated as new: storing a batch
again is harmless, because a resent reading replaces itself in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 63  # fits a signed 64-bit column
_MASK = (1 << WINDOW) - 1


@dataclass(frozen=True, slots=True)
class DeviceCursor:
    """`highest`: the highest durable sequence (0: none yet). Bit i of `held`: highest - 1 - i is durable."""

    highest: int = 0
    held: int = 0

    def holds(self, sequence: int) -> bool:
        """True when a batch with this sequence is already durable (a resend is a duplicate)."""
        if sequence <= 0 or sequence > self.highest:
            return False
        if sequence == self.highest:
            return True
        back = self.highest - 1 - sequence
        return back < WINDOW and bool(self.held >> back & 1)

    def with_durable(self, sequence: int) -> DeviceCursor:
        """The cursor once `sequence` is durable too."""
        if sequence <= 0:
            return self
        if sequence > self.highest:
            shift = sequence - self.highest
            held = self.held << shift
            if self.highest and shift - 1 < WINDOW:
                held |= 1 << (shift - 1)
            return DeviceCursor(sequence, held & _MASK)
        back = self.highest - 1 - sequence
        if back < 0 or back >= WINDOW:
            return self
        return DeviceCursor(self.highest, self.held | 1 << back)

    def merged(self, other: DeviceCursor) -> DeviceCursor:
        """What both cursors hold (two servers recorded batches of the same device)."""
        low, high = sorted((self, other), key=lambda cursor: cursor.highest)
        result = high
        if low.highest:
            result = result.with_durable(low.highest)
            for back in range(WINDOW):
                if low.held >> back & 1:
                    result = result.with_durable(low.highest - 1 - back)
        return result

    def missing(self) -> list[int]:
        """Sequences within the window below the highest that are not durable, ascending."""
        first = max(1, self.highest - WINDOW)
        return [sequence for sequence in range(first, self.highest) if not self.holds(sequence)]


@dataclass(frozen=True, slots=True, order=True)
class LogPosition:
    """Where a copy of a batch sits in the reading log (a Kafka partition and offset)."""

    partition: int
    offset: int


# A device's numbered batch: (user id, source, sequence).
BatchKey = tuple[str, str, int]


def first_in_log(copies: Sequence[tuple[BatchKey, LogPosition]]) -> dict[BatchKey, LogPosition]:
    """The earliest position of each batch among copies read from the log.

    A sequence's first durable content is the one that counts: a device may
    resend a sequence with other readings (a bug, or a reset outbox), a second
    server may publish a resend before it learns of the first, and a resend
    still in flight is published beside the first copy. Every copy after the
    first is answered DUPLICATE, so none of them may change what is stored.
    """
    first: dict[BatchKey, LogPosition] = {}
    for key, position in copies:
        if key not in first or position < first[key]:
            first[key] = position
    return first
