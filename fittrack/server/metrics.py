"""The gRPC server's Prometheus figures: calls started and handled (by status code), their latency, open streams.

The outermost interceptor, so it sees the status the client gets: after ErrorInterceptor has turned a domain
error into its code and AuthInterceptor has refused a call. Installed only when metrics are on.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from fittrack.core.adapters.instruments import Instruments

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _code_name(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> str:
    code = context.code()
    if code is None:
        return default.name
    if isinstance(code, int):
        code = _CODES.get(code, grpc.StatusCode.UNKNOWN)
    return code.name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        return self._wrap(handler, service, method)

    def _wrap(self, handler: grpc.RpcMethodHandler, service: str, method: str) -> grpc.RpcMethodHandler:
        i = self._instruments
        if handler.unary_unary:
            kind = "unary"
        elif handler.stream_unary:
            kind = "client_stream"
        elif handler.unary_stream:
            kind = "server_stream"
        else:
            kind = "bidi_stream"
        # Children bound once per call site, so a call costs no label lookups beyond its code.
        started = i.grpc_started.labels(service, method, kind)
        seconds = i.grpc_seconds.labels(service, method, kind)
        handled = i.grpc_handled
        open_streams = i.grpc_open_streams.labels(service, method) if kind != "unary" else None

        def finish(context, began: float, error: BaseException | None) -> None:
            if error is None:
                code = _code_name(context, grpc.StatusCode.OK)
            elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):  # the client went away
                code = grpc.StatusCode.CANCELLED.name
            else:  # an abort carries its code in the context; anything else reaches the client as UNKNOWN
                code = _code_name(context, grpc.StatusCode.UNKNOWN)
            handled.labels(service, method, kind, code).inc()
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

        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **codecs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **codecs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **codecs)
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **codecs)
