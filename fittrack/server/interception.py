"""What the server's interceptors share: wrapping a handler of any kind of RPC (unary or streaming requests,
unary or streaming responses), the status a call ended with, and a base for interceptors that act before a
Fittrack RPC and on its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

SERVICE_PREFIX = "/fittrack.v1."

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary_response: Callable[[Callable], Callable],
    stream_response: Callable[[Callable], Callable],
) -> grpc.RpcMethodHandler:
    """The same handler, its behaviour wrapped by `unary_response` (calls answered once) or `stream_response`
    (calls answered with a stream); each takes the servicer's behaviour and returns the wrapped one."""
    codecs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **codecs)
    return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **codecs)


def status_of_call(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status the client got: the one set on the context (an abort, or the error interceptor's answer);
    else OK when the call returned, CANCELLED when the client went away (or the server is stopping the call),
    and UNKNOWN, as gRPC answers, for an exception nothing turned into a status."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpcio versions answer the number
        return _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class HandlerWrapper(grpc.aio.ServerInterceptor):
    """Subclasses override `before` and/or `on_error`; health and reflection pass untouched."""

    async def before(self, method: str, context: grpc.aio.ServicerContext) -> None:
        """Runs before the servicer; raising here stops the call."""

    async def on_error(self, method: str, context: grpc.aio.ServicerContext, error: Exception) -> None:
        """Runs when the call raised; re-raises unless it aborts the call itself."""
        raise error

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        return self._wrap(handler, method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        def unary_response(behavior):
            async def call(request, context):
                try:
                    await self.before(method, context)
                    return await behavior(request, context)
                except Exception as error:
                    await self.on_error(method, context, error)

            return call

        def stream_response(behavior):
            async def call(request, context):
                try:
                    await self.before(method, context)
                    async for response in behavior(request, context):
                        yield response
                except Exception as error:
                    await self.on_error(method, context, error)

            return call

        return rewrap(handler, unary_response, stream_response)
