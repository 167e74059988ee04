"""A plain-HTTP readiness endpoint beside the gRPC port, for load balancers that cannot ask gRPC.

HAProxy 2.6 and open-source nginx have no grpc.health.v1 check: a gRPC server answers HTTP 200 even
while it reports NOT_SERVING (the status is in the body and trailers), so checking the gRPC port proves
only that something answers. This endpoint answers from the same health state the gRPC health service
holds:

    GET /ready   200 "serving" while every service is SERVING; 503 naming what is not (a dependency down,
                 or the server shutting down, so a balancer drains it before its calls are cut)
    GET /live    200 while the process answers at all

It speaks just enough HTTP/1.1 for a health checker: one request per connection, no body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# A checker's request is a line and a few headers; anything larger or slower is not one.
MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_SECONDS = 5.0


class ReadinessEndpoint:
    def __init__(self, host: str, port: int, not_ready: Callable[[], list[str]]) -> None:
        """`not_ready` lists what keeps the server from serving (empty: ready)."""
        self._host = host
        self._port = port
        self._not_ready = not_ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self._host, self._port, reuse_port=False)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
            status, body = self._respond(head[:MAX_REQUEST_BYTES])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            status, body = 400, "bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        except ConnectionError:
            pass  # checkers hang up early; nothing to tell them
        finally:
            writer.close()

    def _respond(self, head: bytes) -> tuple[int, str]:
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = rest.split(" ", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "use GET\n"
        if path == "/live":
            return 200, "alive\n"
        if path == "/ready":
            problems = self._not_ready()
            return (503, "not serving: " + "; ".join(problems) + "\n") if problems else (200, "serving\n")
        return 404, "GET /ready or /live\n"


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
