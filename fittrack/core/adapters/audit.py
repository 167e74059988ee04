"""The audit log: one line per security event (fittrack.core.domain.events, those with `audited`), on its own
logger, `fittrack.audit`, so operators can route, keep or ship it apart from the rest.

A line says what happened and to whom, from where, how, with what outcome: the event's fields, which never
hold a password, token or token hash (the events carry none). The fields also ride on the record as
`audit`, so the JSON log format writes them as keys of their own.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re

from fittrack.core.domain.events import Event
from fittrack.core.ports import Observer

AUDIT_LOGGER = "fittrack.audit"

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def event_name(event: Event) -> str:
    """LoginAttempted -> login_attempted: the `event` key of a line."""
    return _WORD_START.sub("_", type(event).__name__).lower()


def audit_fields(event: Event) -> dict[str, str | int | float | None]:
    fields: dict[str, str | int | float | None] = {"event": event_name(event)}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        fields[field.name] = value.value if isinstance(value, enum.Enum) else value
    return fields


class AuditLog(Observer):
    """Writes the audited events at INFO on `fittrack.audit`; ignores the others (they are for the metrics)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def saw(self, event: Event) -> None:
        if not event.audited:
            return
        fields = audit_fields(event)
        details = " ".join(
            f"{key}={_shown(value)}" for key, value in fields.items() if key != "event" and value is not None
        )
        self._log.info("%s %s", fields["event"], details, extra={"audit": fields})


_PLAIN = re.compile(r"[A-Za-z0-9._:@/+-]{1,200}")


def _shown(value: object) -> str:
    """A value as the text line shows it: plain words as they are, anything else quoted and escaped (and cut),
    so no value can end the line or pass for another key."""
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text[:200] + ("..." if len(text) > 200 else ""))
