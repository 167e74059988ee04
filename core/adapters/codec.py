"""Wire format of accepted batches between the server and the persister.

Compact JSON: the persister runs the same code version as the server, and
JSON keeps the topic readable with any Kafka tool.
"""

from __future__ import annotations

import json
from datetime import date

from core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading


def encode_batch(batch: AcceptedBatch) -> bytes:
    return json.dumps(
        {
            "u": batch.user_id,
            "s": batch.source,
            "q": batch.sequence,
            "r": [[r.metric.value, r.minute, r.value, r.local_date.toordinal()] for r in batch.readings],
        },
        separators=(",", ":"),
    ).encode()


def decode_batch(payload: bytes) -> AcceptedBatch:
    data = json.loads(payload)
    readings = tuple(
        PlacedReading(MetricKind(metric), minute, value, date.fromordinal(day))
        for metric, minute, value, day in data["r"]
    )
    return AcceptedBatch(data["u"], data["s"], data["q"], readings)
