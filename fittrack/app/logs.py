"""The log formats (FITTRACK_LOG_FORMAT) and what every record carries: the RPC's request id and the
current trace and span ids.

json: one object per line with time (ISO 8601, UTC), level, logger, message, trace_id, span_id, request_id
(null when none), exception (the traceback text, when there is one), and for audit lines their fields as
keys of their own (fittrack/core/adapters/audit.py). text: the readable line, with the request id at its
end during an RPC.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from opentelemetry import trace

from fittrack.server.request_ids import current_request_id

# The keys every JSON line has; an audit field of the same name never replaces one.
JSON_KEYS = ("time", "level", "logger", "message", "trace_id", "span_id", "request_id")


class RequestContext(logging.Filter):
    """Adds request_id, trace_id and span_id to each record, in the thread that logs it (where the call's
    context is): on the handler, so it sees the records of every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in (getattr(record, "audit", None) or {}).items():
            line.setdefault(key, value)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


def handler_for(log_format: str) -> logging.Handler:
    """A stderr handler in the format (json or text), carrying request and trace ids."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format.lower() == "json" else TextFormatter())
    handler.addFilter(RequestContext())
    return handler
