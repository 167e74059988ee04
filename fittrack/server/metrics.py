"""The gRPC server's Prometheus figures: calls started and handled (by status code), their latency, open streams.

The outermost interceptor, so it sees the status the client gets: after ErrorInterceptor has turned a domain
error into its code and AuthInterceptor has refused a call. Installed only when metrics are on.
"""

from __future__ import annotations

import time

import grpc

from fittrack.core.adapters.instruments import Instruments
from fittrack.server.interception import rewrap, status_of_call


class _Method:
    """One method's instruments, bound to its labels once: a call then costs no label lookups."""

    def __init__(self, instruments: Instruments, service: str, method: str, kind: str) -> None:
        self._handled_family = instruments.grpc_handled
        self._labels = (service, method, kind)
        self.started = instruments.grpc_started.labels(service, method, kind)
        self.seconds = instruments.grpc_seconds.labels(service, method, kind)
        self.open_streams = instruments.grpc_open_streams.labels(service, method) if kind != "unary" else None
        self._handled: dict[str, object] = {}  # by code name: the few codes a method ends with

    def handled(self, code: str) -> None:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._handled_family.labels(*self._labels, code)
        child.inc()


def _kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.unary_unary:
        return "unary"
    if handler.stream_unary:
        return "client_stream"
    if handler.unary_stream:
        return "server_stream"
    return "bidi_stream"


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments
        self._methods: dict[str, _Method] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        bound = self._methods.get(handler_call_details.method)
        if bound is None:
            service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
            bound = self._methods[handler_call_details.method] = _Method(
                self._instruments, service, method, _kind(handler)
            )
        return self._wrap(handler, bound)

    def _wrap(self, handler: grpc.RpcMethodHandler, bound: _Method) -> grpc.RpcMethodHandler:
        started, seconds, open_streams = bound.started, bound.seconds, bound.open_streams

        def finish(context, began: float, error: BaseException | None) -> None:
            code = status_of_call(context, error).name
            bound.handled(code)
            seconds.observe(time.perf_counter() - began)
            if open_streams is not None:
                open_streams.dec()

        def unary_response(behavior):
            async def call(request, context):
                began = time.perf_counter()
                started.inc()
                if open_streams is not None:
                    open_streams.inc()
                try:
                    response = await behavior(request, context)
                except BaseException as error:
                    finish(context, began, error)
                    raise
                finish(context, began, None)
                return response

            return call

        def stream_response(behavior):
            async def call(request, context):
                began = time.perf_counter()
                started.inc()
                open_streams.inc()
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as error:
                    finish(context, began, error)
                    raise
                finish(context, began, None)

            return call

        return rewrap(handler, unary_response, stream_response)
