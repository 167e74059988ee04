import json
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from fittrack.core.adapters.codec import (
    decode_batch,
    decode_dead_letter,
    decode_notification,
    decode_notifications,
    encode_batch,
    encode_dead_letter,
    encode_notification,
    encode_notifications,
)
from fittrack.core.domain.delivery import DeadLetter
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind

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


def test_a_notification_and_a_dead_letter_come_out_of_the_topic_as_they_went_in():
    nudge = Notification(
        "a" * 32,
        "user-1",
        NotificationKind.BEHIND_GOAL,
        "A walk would help",
        "You are 3,000 steps behind.",
        datetime(2026, 6, 10, 12, 0, tzinfo=UTC),
        "behind:g1:2026-06-10:16:00",
        "g1",
        local_date=date(2026, 6, 10),
    )
    assert decode_notification(encode_notification(nudge)) == nudge
    letter = DeadLetter(nudge, 6, "webhook answered HTTP 503", datetime(2026, 6, 10, 13, 0, tzinfo=UTC))
    assert decode_dead_letter(encode_dead_letter(letter)) == letter
    # What earlier releases wrote has no local day.
    earlier = json.loads(encode_notification(nudge))
    del earlier["d"]
    assert decode_notification(json.dumps(earlier).encode()).local_date is None
    # Several share a record; a record of one, as earlier releases wrote it, still reads.
    other = replace(nudge, notification_id="b" * 32, user_id="user-2")
    assert decode_notifications(encode_notifications([nudge, other])) == [nudge, other]
    assert decode_notifications(encode_notification(nudge)) == [nudge]
