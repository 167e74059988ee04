"""The audit log's lines, the JSON and text formats, and the request id each record carries."""

from __future__ import annotations

import contextvars
import json
import logging
import sys

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from fittrack.app.config import Config, ConfigError
from fittrack.app.logs import JSON_KEYS, JsonFormatter, RequestContext, TextFormatter
from fittrack.core.adapters.audit import AUDIT_LOGGER, AuditLog
from fittrack.core.domain.events import (
    AddressThrottled,
    LoginAttempted,
    LoginMethod,
    LoginOutcome,
    NotificationPushed,
)
from fittrack.server import request_ids
from fittrack.server.request_ids import request_id_of


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def audit_records():
    handler = Records()
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


def record_of(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("fittrack.test", logging.WARNING, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    RequestContext().filter(record)
    return record


def test_a_failed_login_is_one_audit_line_saying_what_who_where_how_and_the_outcome(audit_records):
    AuditLog().saw(LoginAttempted(LoginMethod.PASSWORD, LoginOutcome.FAILURE, "u-42", "203.0.113.7"))
    (record,) = audit_records
    assert record.name == "fittrack.audit" and record.levelno == logging.INFO
    assert record.getMessage() == "login_attempted method=password outcome=failure user_id=u-42 address=203.0.113.7"
    assert record.audit == {
        "event": "login_attempted",
        "method": "password",
        "outcome": "failure",
        "user_id": "u-42",
        "address": "203.0.113.7",
        "provider": None,
    }


def test_a_value_with_spaces_or_line_breaks_is_quoted_so_it_cannot_pass_for_another_audit_line(audit_records):
    forged = "x\n2026-12-02 INFO fittrack.audit: password_changed user_id=u-1"
    AuditLog().saw(LoginAttempted(LoginMethod.SSO, LoginOutcome.THROTTLED, None, "203.0.113.7", forged + "y" * 500))
    (record,) = audit_records
    message = record.getMessage()
    assert "\n" not in message and message.count("user_id=") == 1
    assert message.startswith('login_attempted method=sso outcome=throttled address=203.0.113.7 provider="x\\n2026')
    assert len(message) < 300


def test_events_that_are_not_security_events_are_left_to_the_metrics(audit_records):
    AuditLog().saw(NotificationPushed())
    assert audit_records == []


def test_a_json_line_has_the_agreed_keys_and_an_audit_lines_fields_as_keys_of_their_own(audit_records):
    AuditLog().saw(AddressThrottled("198.51.100.23"))
    (record,) = audit_records
    RequestContext().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert set(JSON_KEYS) <= set(line)
    assert (line["level"], line["logger"], line["event"], line["address"]) == (
        "INFO",
        "fittrack.audit",
        "address_throttled",
        "198.51.100.23",
    )
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert line["trace_id"] is None and line["span_id"] is None and line["request_id"] is None


def test_an_audit_field_never_replaces_one_of_the_agreed_keys():
    record = record_of("hello", audit={"event": "x", "message": "forged", "level": "DEBUG"})
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["level"], line["event"]) == ("hello", "WARNING", "x")


def test_a_json_line_carries_the_exception_text_when_there_is_one():
    try:
        raise ValueError("the broken thing")
    except ValueError:
        record = record_of("it failed", exc_info=sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: the broken thing" in line["exception"] and "Traceback" in line["exception"]


def test_a_json_line_inside_a_span_carries_its_trace_and_span_ids():
    context = SpanContext(0x1234, 0xABCD, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context)):
        record = record_of("inside")
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == f"{0x1234:032x}" and line["span_id"] == f"{0xABCD:016x}"


def in_call(request_id: str, make):
    """What `make` returns when run inside a call with this request id (a context of its own)."""

    def run():
        request_ids._current.set(request_id)
        return make()

    return contextvars.copy_context().run(run)


def test_every_record_logged_during_a_call_carries_its_request_id_in_both_formats():
    record = in_call("req-7", lambda: record_of("during the call"))
    assert json.loads(JsonFormatter().format(record))["request_id"] == "req-7"
    assert TextFormatter().format(record).endswith("during the call [request req-7]")
    outside = record_of("outside any call")
    assert TextFormatter().format(outside).endswith("outside any call")


@pytest.mark.parametrize(
    "given",
    ["0af7651916cd43dd8448eb211c80319c", "req-1.2_3:4/5+6=", "a" * 128],
)
def test_a_sane_request_id_from_the_caller_is_kept(given):
    assert request_id_of([("x-request-id", given)]) == given
    assert request_id_of([("X-Request-Id", given.encode())]) == given


@pytest.mark.parametrize(
    "given",
    ["", "a" * 129, "two words", 'quote"', "line\nbreak", "ünïcode", "semi;colon"],
)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(given):
    made = request_id_of([("x-request-id", given)])
    assert made != given and len(made) == 32 and int(made, 16) >= 0
    assert request_id_of([]) != request_id_of([])


def test_the_log_format_is_text_by_default_json_on_request_and_anything_else_is_refused_naming_it():
    assert Config.from_env({}).log_format == "text"
    assert Config.from_env({"FITTRACK_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="FITTRACK_LOG_FORMAT must be text or json, got 'xml'"):
        Config.from_env({"FITTRACK_LOG_FORMAT": "xml"})


def test_the_audit_log_is_on_by_default_and_only_on_or_off_are_accepted():
    assert Config.from_env({}).audit_log_on
    assert not Config.from_env({"FITTRACK_AUDIT_LOG": "off"}).audit_log_on
    with pytest.raises(ConfigError, match="FITTRACK_AUDIT_LOG must be on or off, got 'maybe'"):
        Config.from_env({"FITTRACK_AUDIT_LOG": "maybe"})
