"""Push channels: how a stored notification reaches a user's devices outside the app.

WebhookChannel POSTs each notification as JSON to one URL, where the
operator's own service relays it to FCM, APNs, e-mail or a chat. The
`Idempotency-Key` header is the notification id: a receiver that remembers
the keys it has seen shows a notification once even when a dispatcher that
crashed mid-push sends it again.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from fittrack.core.domain.delivery import PushOutcome, PushResult
from fittrack.core.domain.notifications import Notification
from fittrack.core.ports import PushChannel

log = logging.getLogger(__name__)

# Worth another try: the receiver timed out, is rate limiting, or failed on its side.
RETRYABLE_STATUSES = frozenset({408, 429})
USER_AGENT = "fittrack-dispatcher"


def webhook_payload(notification: Notification) -> dict:
    return {
        "notification_id": notification.notification_id,
        "user_id": notification.user_id,
        "kind": notification.kind.name,
        "title": notification.title,
        "body": notification.body,
        "goal_id": notification.goal_id,
        "created_at": notification.created_at.isoformat(),
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect turns into an error: urllib would follow it with a GET, and a moved webhook is a setting to fix."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its user:password@ part, and that part as a Basic Authorization header value.

    urllib would otherwise take user:password@ for part of the host name; sent as a header, the
    credential also stays out of the URL, which error messages and proxies may show.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    credential = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return urlunsplit(parts._replace(netloc=netloc)), "Basic " + base64.b64encode(credential.encode()).decode()


class WebhookChannel(PushChannel):
    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url, self._authorization = split_credentials(url)
        self._timeout = timeout_seconds
        self._opener = urllib.request.build_opener(_NoRedirects)
        # The path and query of a webhook URL are often its secret (a token the receiver checks): these
        # never reach a failure's detail, which is logged and stored with dead letters.
        parts = urlsplit(url)
        self._secrets = [
            each for each in (url, self._url, parts.path, parts.query, parts.password) if len(each or "") > 1
        ]

    def __repr__(self) -> str:
        return f"WebhookChannel(host={urlsplit(self._url).hostname!r})"

    def _redacted(self, detail: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            detail = detail.replace(secret, "<webhook url>")
        return detail

    def push(self, notification: Notification) -> PushResult:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notification.notification_id,
            "User-Agent": USER_AGENT,
        }
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(
            self._url,
            data=json.dumps(webhook_payload(notification), separators=(",", ":")).encode(),
            method="POST",
            headers=headers,
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status = response.status
                response.read(64 * 1024)  # let the receiver finish its answer before the connection closes
        except urllib.error.HTTPError as error:
            return _classified(error.code, error.reason)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            return PushResult(PushOutcome.RETRY, self._redacted(f"webhook unreachable: {reason}"))
        except Exception as error:  # noqa: BLE001 - a channel never raises; the dispatcher retries
            # No traceback: its frames' messages could quote the URL.
            log.warning("webhook push failed unexpectedly: %s", self._redacted(repr(error)))
            return PushResult(PushOutcome.RETRY, self._redacted(f"webhook push failed: {error!r}"))
        return _classified(status, "")


def _classified(status: int, reason: object) -> PushResult:
    detail = f"webhook answered HTTP {status}" + (f" {reason}" if reason else "")
    if 200 <= status < 300:
        return PushResult(PushOutcome.DELIVERED, detail)
    if status in RETRYABLE_STATUSES or status >= 500:
        return PushResult(PushOutcome.RETRY, detail)
    return PushResult(PushOutcome.PERMANENT, detail)
