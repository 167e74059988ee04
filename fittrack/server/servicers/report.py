from __future__ import annotations

import asyncio

from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.services.reports import Reports
from fittrack.generated.v1 import report_pb2, report_pb2_grpc
from fittrack.server import mapping
from fittrack.server.auth import current_principal

CHUNK_BYTES = 64 * 1024


class ReportServicer(report_pb2_grpc.ReportServiceServicer):
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def ViewReport(self, request, context):
        anchor = mapping.optional_date(request, "anchor", "anchor")
        report = await asyncio.to_thread(self._reports.view, current_principal(), request.period, anchor)
        return mapping.report(report)

    async def DownloadReport(self, request, context):
        """The file is built whole first, so the first message can say its size."""
        if not (request.range.HasField("start") and request.range.HasField("end")):
            raise InvalidArgument("range needs both start and end")
        start = mapping.domain_date(request.range.start, "start")
        end = mapping.domain_date(request.range.end, "end")
        file = await asyncio.to_thread(self._reports.download, current_principal(), start, end, request.format)
        info = report_pb2.ReportFileInfo(
            filename=file.filename, content_type=file.content_type, total_bytes=len(file.content)
        )
        yield report_pb2.DownloadReportResponse(info=info)
        for offset in range(0, len(file.content), CHUNK_BYTES):
            yield report_pb2.DownloadReportResponse(chunk=file.content[offset : offset + CHUNK_BYTES])
