"""A span per Fittrack RPC (OpenTelemetry's RPC conventions), joining the caller's trace when its metadata
carries a W3C traceparent. Health checks and reflection are not traced: a load balancer's checks every few
seconds would bury the calls that matter."""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from fittrack.core.adapters.trace_context import context_from
from fittrack.server.interception import SERVICE_PREFIX, rewrap, status_of_call

# The codes that say the server failed, not the caller: only these mark a server span as an error
# (OpenTelemetry's gRPC conventions); INVALID_ARGUMENT or NOT_FOUND is the caller's doing.
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """First in the server's list, so its span holds the whole call (authentication too) and sees the status
    the client gets: the error interceptor inside it has already turned any exception into one."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        service, _, name = method[1:].partition("/")
        return _Traced(self._tracer, method[1:], service, name, handler_call_details.invocation_metadata).wrap(handler)


class _Traced:
    def __init__(self, tracer: trace.Tracer, span_name: str, service: str, method: str, metadata) -> None:
        self._tracer = tracer
        self._span_name = span_name
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self._metadata = metadata

    def _start(self) -> trace.Span:
        return self._tracer.start_span(
            self._span_name, context=context_from(self._metadata), kind=SpanKind.SERVER, attributes=self._attributes
        )

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        def unary_response(behavior):
            async def call(request, context):
                span = self._start()
                try:
                    with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                        response = await behavior(request, context)
                except BaseException as error:
                    _finish(span, context, error)
                    raise
                _finish(span, context, None)
                return response

            return call

        def stream_response(behavior):
            async def call(request, context):
                span = self._start()
                responses = behavior(request, context)
                try:
                    while True:
                        # Current only while the servicer runs, never across this generator's yield, so the
                        # span is never left attached to whatever grpc runs between two responses.
                        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                            try:
                                response = await anext(responses)
                            except StopAsyncIteration:
                                break
                        yield response
                except BaseException as error:
                    _finish(span, context, error)
                    raise
                _finish(span, context, None)

            return call

        return rewrap(handler, unary_response, stream_response)


def _finish(span: trace.Span, context: grpc.aio.ServicerContext, error: BaseException | None) -> None:
    code = status_of_call(context, error)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_FAULTS:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()
