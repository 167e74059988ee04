"""The tracing interceptor on a real grpc.aio server with the error interceptor inside it, as the server has them."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from fittrack.core.domain.errors import NotFound, Unavailable
from fittrack.server.errors import ErrorInterceptor
from fittrack.server.tracing import TracingInterceptor


async def unary(request: bytes, context) -> bytes:
    if request == b"bug":
        raise RuntimeError("a bug")
    if request == b"down":
        raise Unavailable("the database is unavailable")
    if request == b"missing":
        raise NotFound("no such goal")
    return b"ok"


async def streaming(request: bytes, context):
    yield b"one"
    if request == b"bug":
        raise RuntimeError("a bug after the first response")
    yield b"two"


async def calls(exporter: InMemorySpanExporter, *requests: tuple[str, bytes]) -> list:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = grpc.aio.server(interceptors=[TracingInterceptor(tracer_provider.get_tracer("t")), ErrorInterceptor()])
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Streaming": grpc.unary_stream_rpc_method_handler(streaming),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("fittrack.v1.Test", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    answers = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method, request in requests:
                path = f"/fittrack.v1.Test/{method}"
                try:
                    if method == "Unary":
                        answers.append(await channel.unary_unary(path)(request))
                    else:
                        answers.append([r async for r in channel.unary_stream(path)(request)])
                except grpc.aio.AioRpcError as error:
                    answers.append(error.code())
    finally:
        await server.stop(None)
    return answers


@pytest.mark.parametrize(
    ("request_", "code", "error"),
    [
        (b"fine", grpc.StatusCode.OK, False),
        (b"missing", grpc.StatusCode.NOT_FOUND, False),  # the caller's mistake
        (b"bug", grpc.StatusCode.INTERNAL, True),
        (b"down", grpc.StatusCode.UNAVAILABLE, True),
    ],
)
def test_a_unary_calls_span_has_the_status_code_the_client_got_and_is_an_error_only_for_the_servers_faults(
    request_, code, error
):
    exporter = InMemorySpanExporter()
    (answer,) = asyncio.run(calls(exporter, ("Unary", request_)))
    assert answer == (b"ok" if code == grpc.StatusCode.OK else code)
    (span,) = exporter.get_finished_spans()
    assert span.name == "fittrack.v1.Test/Unary"
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert span.attributes["rpc.method"] == "Unary"
    assert (span.status.status_code == StatusCode.ERROR) is error


def test_a_streaming_calls_span_ends_with_the_stream_and_its_status_after_responses_were_sent():
    exporter = InMemorySpanExporter()
    answers = asyncio.run(calls(exporter, ("Streaming", b"fine"), ("Streaming", b"bug")))
    assert answers == [[b"one", b"two"], grpc.StatusCode.INTERNAL]
    fine, bug = sorted(exporter.get_finished_spans(), key=lambda span: span.start_time)
    assert fine.attributes["rpc.grpc.status_code"] == 0
    assert bug.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert bug.status.status_code == StatusCode.ERROR
