"""Wire formats of what travels through the bus: accepted batches, notifications and dead letters.

Batches are packed binary (see encode_batch); notifications are compact JSON,
readable with any Kafka tool.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import date, datetime

from fittrack.core.domain.delivery import DeadLetter
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading
from fittrack.core.domain.notifications import Notification, NotificationKind

# Batches are the hot path (hundreds of thousands of readings a second), so
# they travel in a compact binary form: a version byte, a small JSON header,
# then the readings column by column, packed by one struct call each way.
# Version 0 (compact JSON, what earlier releases wrote) is still decoded, so
# a log or topic written before an upgrade is applied after it.
_BINARY_V1 = 1
_HEADER = struct.Struct("<BHI")  # version, header length, reading count
_KINDS = {kind.value: kind for kind in MetricKind}


def _columns(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}B{count}q{count}d{count}i")


def encode_batch(batch: AcceptedBatch) -> bytes:
    header = json.dumps({"u": batch.user_id, "s": batch.source, "q": batch.sequence}, separators=(",", ":")).encode()
    readings = batch.readings
    columns = _columns(len(readings)).pack(
        *[r.metric.value for r in readings],
        *[r.minute for r in readings],
        *[r.value for r in readings],
        *[r.local_date.toordinal() for r in readings],
    )
    return _HEADER.pack(_BINARY_V1, len(header), len(readings)) + header + columns


def decode_batch(payload: bytes) -> AcceptedBatch:
    if payload[:1] == b"{":
        return _decode_json_batch(payload)
    version, header_length, count = _HEADER.unpack_from(payload)
    if version != _BINARY_V1:
        raise ValueError(f"unknown batch encoding version {version}")
    header = json.loads(payload[_HEADER.size : _HEADER.size + header_length])
    values = _columns(count).unpack_from(payload, _HEADER.size + header_length)
    kinds, days = _KINDS, {}
    readings = []
    for metric, minute, value, ordinal in zip(
        values[:count], values[count : 2 * count], values[2 * count : 3 * count], values[3 * count :], strict=True
    ):
        day = days.get(ordinal)
        if day is None:
            day = days[ordinal] = date.fromordinal(ordinal)
        readings.append(PlacedReading(kinds[metric], minute, value, day))
    return AcceptedBatch(header["u"], header["s"], header["q"], tuple(readings))


def _decode_json_batch(payload: bytes) -> AcceptedBatch:
    data = json.loads(payload)
    readings = tuple(
        PlacedReading(MetricKind(metric), minute, value, date.fromordinal(day))
        for metric, minute, value, day in data["r"]
    )
    return AcceptedBatch(data["u"], data["s"], data["q"], readings)


def encode_notification(notification: Notification) -> bytes:
    return json.dumps(_notification_fields(notification), separators=(",", ":")).encode()


def decode_notification(payload: bytes) -> Notification:
    return _notification_of(json.loads(payload))


def encode_notifications(notifications: Sequence[Notification]) -> bytes:
    """Several notifications in one record: a JSON array of what encode_notification writes one by one."""
    return json.dumps([_notification_fields(n) for n in notifications], separators=(",", ":")).encode()


def decode_notifications(payload: bytes) -> list[Notification]:
    """A record of encode_notifications, or of encode_notification (one notification, as earlier releases wrote)."""
    data = json.loads(payload)
    if isinstance(data, list):
        return [_notification_of(fields) for fields in data]
    return [_notification_of(data)]


def _notification_fields(notification: Notification) -> dict:
    fields = {
        "id": notification.notification_id,
        "u": notification.user_id,
        "k": int(notification.kind),
        "t": notification.title,
        "b": notification.body,
        "c": notification.created_at.isoformat(),
        "key": notification.idempotency_key,
        "g": notification.goal_id,
    }
    if notification.local_date is not None:
        fields["d"] = notification.local_date.isoformat()
    return fields


def _notification_of(data: dict) -> Notification:
    # "d" is absent from what earlier releases wrote, and from notifications without a local day.
    day = data.get("d")
    return Notification(
        notification_id=data["id"],
        user_id=data["u"],
        kind=NotificationKind(data["k"]),
        title=data["t"],
        body=data["b"],
        created_at=datetime.fromisoformat(data["c"]),
        idempotency_key=data["key"],
        goal_id=data["g"],
        local_date=date.fromisoformat(day) if day else None,
    )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return json.dumps(
        {
            "n": _notification_fields(letter.notification),
            "a": letter.attempts,
            "e": letter.last_error,
            "f": letter.failed_at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()


def decode_dead_letter(payload: bytes) -> DeadLetter:
    data = json.loads(payload)
    return DeadLetter(_notification_of(data["n"]), data["a"], data["e"], datetime.fromisoformat(data["f"]))
