import datetime

from fittrack.generated.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import code_pb2 as _code_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Reading(_message.Message):
    __slots__ = ("metric", "time", "value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: _common_pb2.MetricKind
    time: _timestamp_pb2.Timestamp
    value: float
    def __init__(self, metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ...) -> None: ...

class ReadingBatch(_message.Message):
    __slots__ = ("device_id", "sequence", "readings")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    readings: _containers.RepeatedCompositeFieldContainer[Reading]
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., readings: _Optional[_Iterable[_Union[Reading, _Mapping]]] = ...) -> None: ...

class UploadReadingsRequest(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: ReadingBatch
    def __init__(self, batch: _Optional[_Union[ReadingBatch, _Mapping]] = ...) -> None: ...

class UploadSummary(_message.Message):
    __slots__ = ("batches_accepted", "batches_duplicate", "readings_accepted", "first_reading_time", "last_reading_time")
    BATCHES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    READINGS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FIRST_READING_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_READING_TIME_FIELD_NUMBER: _ClassVar[int]
    batches_accepted: int
    batches_duplicate: int
    readings_accepted: int
    first_reading_time: _timestamp_pb2.Timestamp
    last_reading_time: _timestamp_pb2.Timestamp
    def __init__(self, batches_accepted: _Optional[int] = ..., batches_duplicate: _Optional[int] = ..., readings_accepted: _Optional[int] = ..., first_reading_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_reading_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SyncReadingsRequest(_message.Message):
    __slots__ = ("hello", "batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: SyncHello
    batch: ReadingBatch
    def __init__(self, hello: _Optional[_Union[SyncHello, _Mapping]] = ..., batch: _Optional[_Union[ReadingBatch, _Mapping]] = ...) -> None: ...

class SyncHello(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class SyncReadingsResponse(_message.Message):
    __slots__ = ("welcome", "ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: SyncWelcome
    ack: BatchAck
    def __init__(self, welcome: _Optional[_Union[SyncWelcome, _Mapping]] = ..., ack: _Optional[_Union[BatchAck, _Mapping]] = ...) -> None: ...

class SyncWelcome(_message.Message):
    __slots__ = ("device_id", "last_durable_sequence", "missing_sequences")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_DURABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MISSING_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    last_durable_sequence: int
    missing_sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, device_id: _Optional[str] = ..., last_durable_sequence: _Optional[int] = ..., missing_sequences: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("device_id", "sequence", "status", "reason", "readings_accepted", "code")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[BatchAck.Status]
        STATUS_ACCEPTED: _ClassVar[BatchAck.Status]
        STATUS_DUPLICATE: _ClassVar[BatchAck.Status]
        STATUS_REJECTED: _ClassVar[BatchAck.Status]
    STATUS_UNSPECIFIED: BatchAck.Status
    STATUS_ACCEPTED: BatchAck.Status
    STATUS_DUPLICATE: BatchAck.Status
    STATUS_REJECTED: BatchAck.Status
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    READINGS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    status: BatchAck.Status
    reason: str
    readings_accepted: int
    code: _code_pb2.Code
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., status: _Optional[_Union[BatchAck.Status, str]] = ..., reason: _Optional[str] = ..., readings_accepted: _Optional[int] = ..., code: _Optional[_Union[_code_pb2.Code, str]] = ...) -> None: ...

class ViewMetricRequest(_message.Message):
    __slots__ = ("metric", "preset", "dates")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    DATES_FIELD_NUMBER: _ClassVar[int]
    metric: _common_pb2.MetricKind
    preset: _common_pb2.RangePreset
    dates: _common_pb2.DateRange
    def __init__(self, metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., preset: _Optional[_Union[_common_pb2.RangePreset, str]] = ..., dates: _Optional[_Union[_common_pb2.DateRange, _Mapping]] = ...) -> None: ...

class DailyValue(_message.Message):
    __slots__ = ("date", "value", "min", "max", "minutes_with_data", "sources")
    DATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MINUTES_WITH_DATA_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    date: _date_pb2.Date
    value: float
    min: float
    max: float
    minutes_with_data: int
    sources: _containers.RepeatedCompositeFieldContainer[SourceValue]
    def __init__(self, date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., value: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., minutes_with_data: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[SourceValue, _Mapping]]] = ...) -> None: ...

class SourceValue(_message.Message):
    __slots__ = ("source", "value", "minutes_with_data")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_WITH_DATA_FIELD_NUMBER: _ClassVar[int]
    source: str
    value: float
    minutes_with_data: int
    def __init__(self, source: _Optional[str] = ..., value: _Optional[float] = ..., minutes_with_data: _Optional[int] = ...) -> None: ...

class ViewMetricResponse(_message.Message):
    __slots__ = ("metric", "unit", "start", "end", "days", "total", "average", "min", "max", "days_with_data", "sources")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DAYS_WITH_DATA_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    metric: _common_pb2.MetricKind
    unit: str
    start: _date_pb2.Date
    end: _date_pb2.Date
    days: _containers.RepeatedCompositeFieldContainer[DailyValue]
    total: float
    average: float
    min: float
    max: float
    days_with_data: int
    sources: _containers.RepeatedCompositeFieldContainer[SourceValue]
    def __init__(self, metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., unit: _Optional[str] = ..., start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., days: _Optional[_Iterable[_Union[DailyValue, _Mapping]]] = ..., total: _Optional[float] = ..., average: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., days_with_data: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[SourceValue, _Mapping]]] = ...) -> None: ...
