"""A request id for every RPC: the caller's `x-request-id` when it is a sane one, a new one otherwise.

It is kept in a context variable for the call (and its stream, and the threads the call hands work to, which
copy the context), so that every log line written meanwhile carries it (fittrack/app/logs.py), and it goes
back to the caller in the response's initial metadata, and in the trailing metadata too, so that a call that
fails before any header was sent still tells its id.
"""

from __future__ import annotations

import contextvars
import re
import secrets

import grpc

from fittrack.server.interception import SERVICE_PREFIX, rewrap

REQUEST_ID = "x-request-id"
# Bounded and plain, since it is written into every log line of the call: no spaces, quotes or control
# characters a caller could forge lines with. UUIDs, ULIDs and most proxies' ids fit.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("fittrack_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the RPC this code runs for; None outside one."""
    return _current.get()


def request_id_of(metadata) -> str:
    """The caller's id when sane, else a new one (32 hex digits)."""
    for key, value in metadata or ():
        if key.lower() != REQUEST_ID:
            continue
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if SANE_REQUEST_ID.fullmatch(value):
            return value
        break
    return secrets.token_hex(16)


class _Headers:
    """The call's context, sending the request id with the initial metadata whenever they go: when the
    servicer sends them itself (a stream that says it is subscribed), or with the first response."""

    def __init__(self, context: grpc.aio.ServicerContext, request_id: str) -> None:
        self._context = context
        self._request_id = request_id
        self.sent = False

    async def send_initial_metadata(self, metadata) -> None:
        if self.sent:
            return
        self.sent = True
        await self._context.send_initial_metadata((*tuple(metadata), (REQUEST_ID, self._request_id)))

    async def ensure_sent(self) -> None:
        await self.send_initial_metadata(())

    def __getattr__(self, name):
        return getattr(self._context, name)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Before the error and auth interceptors (after tracing and metrics, which log nothing per call), so the lines
    those write (an unexpected error) carry the id too."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(SERVICE_PREFIX):
            return handler
        return _wrap(handler)


def _start(context: grpc.aio.ServicerContext) -> _Headers:
    request_id = request_id_of(context.invocation_metadata())
    _current.set(request_id)  # each call runs in a task of its own: the value ends with it
    context.set_trailing_metadata(((REQUEST_ID, request_id),))
    return _Headers(context, request_id)


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    def unary_response(behavior):
        async def call(request, context):
            headers = _start(context)
            response = await behavior(request, headers)
            await headers.ensure_sent()
            return response

        return call

    def stream_response(behavior):
        async def call(request, context):
            headers = _start(context)
            async for response in behavior(request, headers):
                await headers.ensure_sent()
                yield response
            await headers.ensure_sent()

        return call

    return rewrap(handler, unary_response, stream_response)
