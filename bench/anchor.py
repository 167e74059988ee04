"""The raw transport anchor: a bare grpc.aio client-streaming server that only counts readings.

Same messages, same batch size, same client as the real benchmark, so the
ratio says how much of the transport's speed Fittrack keeps.
"""

from __future__ import annotations

import grpc

from generated.fittrack.v1 import metric_pb2, metric_pb2_grpc


class CountingMetricService(metric_pb2_grpc.MetricServiceServicer):
    def __init__(self) -> None:
        self.readings = 0

    async def UploadReadings(self, request_iterator, context):
        batches = readings = 0
        async for request in request_iterator:
            batches += 1
            readings += len(request.batch.readings)
        self.readings += readings
        return metric_pb2.UploadSummary(batches_accepted=batches, readings_accepted=readings)

    async def SyncReadings(self, request_iterator, context):
        async for request in request_iterator:
            self.readings += len(request.batch.readings)
            ack = metric_pb2.BatchAck(
                device_id=request.batch.device_id,
                sequence=request.batch.sequence,
                status=metric_pb2.BatchAck.STATUS_ACCEPTED,
                readings_accepted=len(request.batch.readings),
            )
            yield metric_pb2.SyncReadingsResponse(ack=ack)


async def start_anchor() -> tuple[grpc.aio.Server, int, CountingMetricService]:
    server = grpc.aio.server()
    service = CountingMetricService()
    metric_pb2_grpc.add_MetricServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, service
