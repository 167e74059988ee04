"""A source's minutes of one local day, as one blob: the layout both metric stores use.

n little-endian int32 minutes since the epoch, ascending, then the n float64
values in the same order: array converts either half at C speed, and a day
being filled in order grows by two concatenations. A store reads and writes a
day's minutes as one value instead of one row (SQLite) or one field
(MongoDB) per minute, which is what makes a write cheap.
"""

from __future__ import annotations

import struct
import sys
from array import array

_MINUTE_TYPE, _VALUE_TYPE = "i", "d"  # C int is 32 bits wherever CPython runs
_ENTRY_SIZE = 4 + 8
_BIG_ENDIAN_HOST = sys.byteorder == "big"
_INT32 = struct.Struct("<i")


def minutes_of(blob: bytes) -> array:
    minutes = array(_MINUTE_TYPE)
    minutes.frombytes(memoryview(blob)[: 4 * (len(blob) // _ENTRY_SIZE)])
    if _BIG_ENDIAN_HOST:
        minutes.byteswap()
    return minutes


def values_of(blob: bytes) -> array:
    values = array(_VALUE_TYPE)
    values.frombytes(memoryview(blob)[4 * (len(blob) // _ENTRY_SIZE) :])
    if _BIG_ENDIAN_HOST:
        values.byteswap()
    return values


def decoded(blob: bytes) -> dict[int, float]:
    return dict(zip(minutes_of(blob), values_of(blob), strict=True))


def _little_endian(numbers: array) -> bytes:
    if _BIG_ENDIAN_HOST:
        numbers.byteswap()
    return numbers.tobytes()


def halves(values: dict[int, float]) -> tuple[bytes, bytes]:
    minutes = sorted(values)
    return (
        _little_endian(array(_MINUTE_TYPE, minutes)),
        _little_endian(array(_VALUE_TYPE, map(values.__getitem__, minutes))),
    )


def encoded(values: dict[int, float]) -> bytes:
    minutes, numbers = halves(values)
    return minutes + numbers


def ends(blob: bytes) -> tuple[int, int]:
    """The first and last minute held."""
    count = len(blob) // _ENTRY_SIZE
    return _INT32.unpack_from(blob, 0)[0], _INT32.unpack_from(blob, 4 * count - 4)[0]


def merged(blob: bytes | None, fresh: dict[int, float]) -> bytes:
    """The blob with `fresh` stored over it."""
    if not blob:
        return encoded(fresh)
    if min(fresh) > ends(blob)[1]:
        # A device uploads its minutes in order: appending needs no decoding.
        split = 4 * (len(blob) // _ENTRY_SIZE)
        minutes, numbers = halves(fresh)
        return b"".join((blob[:split], minutes, blob[split:], numbers))
    values = decoded(blob)
    values.update(fresh)
    return encoded(values)
