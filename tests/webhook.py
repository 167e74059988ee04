"""A real webhook receiver for the tests: an HTTP server on a loopback port, in a thread.

It records every request and answers each user's pushes from a script of
statuses (then 200), or always with one status while the user is failing.
It can also hold the next request until the test releases it, to kill a
dispatcher while it waits for the answer.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    payload: dict
    status: int  # what it was answered (or will be, for a held request)

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")


class Webhook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._scripts: dict[str, list[int]] = {}
        self._failing: dict[str, int] = {}
        self._hold_next = False
        self.held = threading.Event()  # set once a request is being held
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="test-webhook", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/fittrack"

    def answer(self, user_id: str, *statuses: int) -> None:
        """Answer this user's next pushes with these statuses, then 200."""
        with self._lock:
            self._scripts[user_id] = list(statuses)

    def fail(self, user_id: str, status: int = 503) -> None:
        with self._lock:
            self._failing[user_id] = status

    def recover(self, user_id: str) -> None:
        with self._lock:
            self._failing.pop(user_id, None)

    def hold_next(self) -> None:
        """Keep the next request waiting, unanswered, until release()."""
        with self._lock:
            self._hold_next = True

    def release(self) -> None:
        self._release.set()

    def received(self, user_id: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._requests if user_id is None or r.payload.get("user_id") == user_id]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, payload: dict) -> tuple[int, bool]:
        user_id = payload.get("user_id", "")
        with self._lock:
            hold, self._hold_next = self._hold_next, False
            script = self._scripts.get(user_id)
            if script:
                return script.pop(0), hold
            return self._failing.get(user_id, 200), hold

    def _record(self, received: Received) -> None:
        with self._lock:
            self._requests.append(received)

    def _handler(self):
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                payload = json.loads(body or b"{}")
                status, hold = webhook._decide(payload)
                webhook._record(Received(self.path, dict(self.headers), payload, status))
                if hold:
                    webhook.held.set()
                    webhook._release.wait(120)
                # The dispatcher that sent a held request may be dead by now.
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler
