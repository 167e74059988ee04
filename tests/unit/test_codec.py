import json
from datetime import date

import pytest

from core.adapters.codec import decode_batch, encode_batch
from core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading

BATCH = AcceptedBatch(
    "user-1",
    "wätch 7",
    2**40,
    (
        PlacedReading(MetricKind.STEPS, 29_000_000, 87.0, date(2026, 11, 24)),
        PlacedReading(MetricKind.HEART_RATE, 29_000_001, 61.25, date(2026, 11, 25)),
    ),
)


def test_a_batch_comes_out_of_the_bus_as_it_went_in():
    assert decode_batch(encode_batch(BATCH)) == BATCH


def test_a_batch_written_by_an_earlier_release_as_json_is_still_read():
    earlier = json.dumps(
        {
            "u": "user-1",
            "s": "wätch 7",
            "q": 2**40,
            "r": [[1, 29_000_000, 87.0, 739944], [5, 29_000_001, 61.25, 739945]],
        }
    ).encode()
    assert decode_batch(earlier) == BATCH


def test_an_unknown_encoding_version_is_an_error_not_a_silent_misread():
    with pytest.raises(ValueError, match="version"):
        decode_batch(b"\x07" + encode_batch(BATCH)[1:])
