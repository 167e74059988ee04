from fittrack.generated.v1 import common_pb2 as _common_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_PERIOD_UNSPECIFIED: _ClassVar[ReportPeriod]
    REPORT_PERIOD_WEEK: _ClassVar[ReportPeriod]
    REPORT_PERIOD_MONTH: _ClassVar[ReportPeriod]

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    REPORT_FORMAT_CSV: _ClassVar[ReportFormat]
    REPORT_FORMAT_PDF: _ClassVar[ReportFormat]
REPORT_PERIOD_UNSPECIFIED: ReportPeriod
REPORT_PERIOD_WEEK: ReportPeriod
REPORT_PERIOD_MONTH: ReportPeriod
REPORT_FORMAT_UNSPECIFIED: ReportFormat
REPORT_FORMAT_CSV: ReportFormat
REPORT_FORMAT_PDF: ReportFormat

class ViewReportRequest(_message.Message):
    __slots__ = ("period", "anchor")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    anchor: _date_pb2.Date
    def __init__(self, period: _Optional[_Union[ReportPeriod, str]] = ..., anchor: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class ReportDay(_message.Message):
    __slots__ = ("date", "value", "goal_target", "goal_met", "has_data")
    DATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    GOAL_TARGET_FIELD_NUMBER: _ClassVar[int]
    GOAL_MET_FIELD_NUMBER: _ClassVar[int]
    HAS_DATA_FIELD_NUMBER: _ClassVar[int]
    date: _date_pb2.Date
    value: float
    goal_target: float
    goal_met: bool
    has_data: bool
    def __init__(self, date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., value: _Optional[float] = ..., goal_target: _Optional[float] = ..., goal_met: _Optional[bool] = ..., has_data: _Optional[bool] = ...) -> None: ...

class MetricReport(_message.Message):
    __slots__ = ("metric", "unit", "days", "total", "average", "best_day", "best_value", "days_goal_met", "current_streak", "daily_goal_target", "weekly_goal_target", "previous_total", "change_percent", "days_so_far")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FIELD_NUMBER: _ClassVar[int]
    BEST_DAY_FIELD_NUMBER: _ClassVar[int]
    BEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    DAYS_GOAL_MET_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STREAK_FIELD_NUMBER: _ClassVar[int]
    DAILY_GOAL_TARGET_FIELD_NUMBER: _ClassVar[int]
    WEEKLY_GOAL_TARGET_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DAYS_SO_FAR_FIELD_NUMBER: _ClassVar[int]
    metric: _common_pb2.MetricKind
    unit: str
    days: _containers.RepeatedCompositeFieldContainer[ReportDay]
    total: float
    average: float
    best_day: _date_pb2.Date
    best_value: float
    days_goal_met: int
    current_streak: int
    daily_goal_target: float
    weekly_goal_target: float
    previous_total: float
    change_percent: float
    days_so_far: int
    def __init__(self, metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., unit: _Optional[str] = ..., days: _Optional[_Iterable[_Union[ReportDay, _Mapping]]] = ..., total: _Optional[float] = ..., average: _Optional[float] = ..., best_day: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., best_value: _Optional[float] = ..., days_goal_met: _Optional[int] = ..., current_streak: _Optional[int] = ..., daily_goal_target: _Optional[float] = ..., weekly_goal_target: _Optional[float] = ..., previous_total: _Optional[float] = ..., change_percent: _Optional[float] = ..., days_so_far: _Optional[int] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("period", "start", "end", "metrics")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    start: _date_pb2.Date
    end: _date_pb2.Date
    metrics: _containers.RepeatedCompositeFieldContainer[MetricReport]
    def __init__(self, period: _Optional[_Union[ReportPeriod, str]] = ..., start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., metrics: _Optional[_Iterable[_Union[MetricReport, _Mapping]]] = ...) -> None: ...

class DownloadReportRequest(_message.Message):
    __slots__ = ("range", "format")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    range: _common_pb2.DateRange
    format: ReportFormat
    def __init__(self, range: _Optional[_Union[_common_pb2.DateRange, _Mapping]] = ..., format: _Optional[_Union[ReportFormat, str]] = ...) -> None: ...

class ReportFileInfo(_message.Message):
    __slots__ = ("filename", "content_type", "total_bytes")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    total_bytes: int
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class DownloadReportResponse(_message.Message):
    __slots__ = ("info", "chunk")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    info: ReportFileInfo
    chunk: bytes
    def __init__(self, info: _Optional[_Union[ReportFileInfo, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...
