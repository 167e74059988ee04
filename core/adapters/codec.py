"""Wire formats of what travels through the bus: accepted batches and notifications.

Compact JSON: the persister runs the same code version as the server, and
JSON keeps the topic readable with any Kafka tool.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from core.domain.notifications import Notification, NotificationKind


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


def encode_notification(notification: Notification) -> bytes:
    return json.dumps(
        {
            "id": notification.notification_id,
            "u": notification.user_id,
            "k": int(notification.kind),
            "t": notification.title,
            "b": notification.body,
            "c": notification.created_at.isoformat(),
            "key": notification.idempotency_key,
            "g": notification.goal_id,
        },
        separators=(",", ":"),
    ).encode()


def decode_notification(payload: bytes) -> Notification:
    data = json.loads(payload)
    return Notification(
        notification_id=data["id"],
        user_id=data["u"],
        kind=NotificationKind(data["k"]),
        title=data["t"],
        body=data["b"],
        created_at=datetime.fromisoformat(data["c"]),
        idempotency_key=data["key"],
        goal_id=data["g"],
    )
