from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_KIND_UNSPECIFIED: _ClassVar[MetricKind]
    METRIC_KIND_STEPS: _ClassVar[MetricKind]
    METRIC_KIND_CALORIES_BURNED: _ClassVar[MetricKind]
    METRIC_KIND_DISTANCE: _ClassVar[MetricKind]
    METRIC_KIND_ACTIVE_MINUTES: _ClassVar[MetricKind]
    METRIC_KIND_HEART_RATE: _ClassVar[MetricKind]

class GoalPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GOAL_PERIOD_UNSPECIFIED: _ClassVar[GoalPeriod]
    GOAL_PERIOD_DAILY: _ClassVar[GoalPeriod]
    GOAL_PERIOD_WEEKLY: _ClassVar[GoalPeriod]

class RangePreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANGE_PRESET_UNSPECIFIED: _ClassVar[RangePreset]
    RANGE_PRESET_TODAY: _ClassVar[RangePreset]
    RANGE_PRESET_LAST_7_DAYS: _ClassVar[RangePreset]
    RANGE_PRESET_LAST_30_DAYS: _ClassVar[RangePreset]
METRIC_KIND_UNSPECIFIED: MetricKind
METRIC_KIND_STEPS: MetricKind
METRIC_KIND_CALORIES_BURNED: MetricKind
METRIC_KIND_DISTANCE: MetricKind
METRIC_KIND_ACTIVE_MINUTES: MetricKind
METRIC_KIND_HEART_RATE: MetricKind
GOAL_PERIOD_UNSPECIFIED: GoalPeriod
GOAL_PERIOD_DAILY: GoalPeriod
GOAL_PERIOD_WEEKLY: GoalPeriod
RANGE_PRESET_UNSPECIFIED: RangePreset
RANGE_PRESET_TODAY: RangePreset
RANGE_PRESET_LAST_7_DAYS: RangePreset
RANGE_PRESET_LAST_30_DAYS: RangePreset

class DateRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _date_pb2.Date
    end: _date_pb2.Date
    def __init__(self, start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...
