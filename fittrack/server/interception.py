"""A base for interceptors that act before a Fittrack RPC and on its errors,
for every kind of RPC: unary or streaming requests, unary or streaming responses."""

from __future__ import annotations

import grpc

SERVICE_PREFIX = "/fittrack.v1."


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
