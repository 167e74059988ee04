"""The raw transport anchor: a bare grpc.aio server that only counts readings.

It serves MetricService's UploadReadings and SyncReadings with the same
messages and limits as Fittrack, but stores nothing: SyncReadings answers a
hello with an empty welcome and acknowledges every batch at once. The
benchmarks drive it with the same client code as the real server, in the same
run, so `ratio_to_anchor` says how much of the transport's speed (and, for
held streams, of its memory footprint) Fittrack keeps.

    python -m bench.anchor --listen 127.0.0.1:50099

It runs in its own process, like the server, so the benchmark's client does
not share its event loop and its RSS can be read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fittrack.app.config import Config
from fittrack.generated.v1 import metric_pb2, metric_pb2_grpc

Ack = metric_pb2.BatchAck


class CountingMetricService(metric_pb2_grpc.MetricServiceServicer):
    def __init__(self) -> None:
        self.readings = 0
        self.batches = 0

    async def UploadReadings(self, request_iterator, context):
        batches = readings = 0
        async for request in request_iterator:
            batches += 1
            readings += len(request.batch.readings)
        self.batches += batches
        self.readings += readings
        return metric_pb2.UploadSummary(batches_accepted=batches, readings_accepted=readings)

    async def SyncReadings(self, request_iterator, context):
        async for request in request_iterator:
            if request.WhichOneof("message") == "hello":
                welcome = metric_pb2.SyncWelcome(device_id=request.hello.device_id)
                yield metric_pb2.SyncReadingsResponse(welcome=welcome)
                continue
            count = len(request.batch.readings)
            self.batches += 1
            self.readings += count
            ack = Ack(
                device_id=request.batch.device_id,
                sequence=request.batch.sequence,
                status=Ack.STATUS_ACCEPTED,
                readings_accepted=count,
            )
            yield metric_pb2.SyncReadingsResponse(ack=ack)


def _options() -> list[tuple[str, int]]:
    limit = Config().max_message_bytes  # the server's default, so both take the same messages
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]


async def start_anchor(listen: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, int, CountingMetricService]:
    """The anchor in the calling event loop; returns the server, its port and the counting service."""
    server = grpc.aio.server(options=_options())
    service = CountingMetricService()
    metric_pb2_grpc.add_MetricServiceServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port, service


async def serve(listen: str) -> None:
    server, _, _ = await start_anchor(listen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:50099", help="host:port to serve on")
    options = parser.parse_args(argv)
    asyncio.run(serve(options.listen))


if __name__ == "__main__":
    main()
