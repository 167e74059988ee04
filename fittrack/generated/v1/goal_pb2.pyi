import datetime

from fittrack.generated.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Goal(_message.Message):
    __slots__ = ("goal_id", "metric", "period", "target", "active", "created_at", "updated_at", "notify")
    GOAL_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    goal_id: str
    metric: _common_pb2.MetricKind
    period: _common_pb2.GoalPeriod
    target: float
    active: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    notify: bool
    def __init__(self, goal_id: _Optional[str] = ..., metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., period: _Optional[_Union[_common_pb2.GoalPeriod, str]] = ..., target: _Optional[float] = ..., active: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., notify: _Optional[bool] = ...) -> None: ...

class CreateGoalRequest(_message.Message):
    __slots__ = ("metric", "period", "target", "notify")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    metric: _common_pb2.MetricKind
    period: _common_pb2.GoalPeriod
    target: float
    notify: bool
    def __init__(self, metric: _Optional[_Union[_common_pb2.MetricKind, str]] = ..., period: _Optional[_Union[_common_pb2.GoalPeriod, str]] = ..., target: _Optional[float] = ..., notify: _Optional[bool] = ...) -> None: ...

class ListGoalsRequest(_message.Message):
    __slots__ = ("include_inactive",)
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    include_inactive: bool
    def __init__(self, include_inactive: _Optional[bool] = ...) -> None: ...

class ListGoalsResponse(_message.Message):
    __slots__ = ("goals",)
    GOALS_FIELD_NUMBER: _ClassVar[int]
    goals: _containers.RepeatedCompositeFieldContainer[Goal]
    def __init__(self, goals: _Optional[_Iterable[_Union[Goal, _Mapping]]] = ...) -> None: ...

class UpdateGoalRequest(_message.Message):
    __slots__ = ("goal_id", "target", "active", "notify")
    GOAL_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    goal_id: str
    target: float
    active: bool
    notify: bool
    def __init__(self, goal_id: _Optional[str] = ..., target: _Optional[float] = ..., active: _Optional[bool] = ..., notify: _Optional[bool] = ...) -> None: ...

class DeleteGoalRequest(_message.Message):
    __slots__ = ("goal_id",)
    GOAL_ID_FIELD_NUMBER: _ClassVar[int]
    goal_id: str
    def __init__(self, goal_id: _Optional[str] = ...) -> None: ...

class DeleteGoalResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetGoalProgressRequest(_message.Message):
    __slots__ = ("goal_id", "date")
    GOAL_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    goal_id: str
    date: _date_pb2.Date
    def __init__(self, goal_id: _Optional[str] = ..., date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class GoalProgress(_message.Message):
    __slots__ = ("goal", "period_start", "period_end", "current", "fraction", "met", "remaining", "expected_by_now", "as_of")
    GOAL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MET_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BY_NOW_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    goal: Goal
    period_start: _date_pb2.Date
    period_end: _date_pb2.Date
    current: float
    fraction: float
    met: bool
    remaining: float
    expected_by_now: float
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, goal: _Optional[_Union[Goal, _Mapping]] = ..., period_start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., period_end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., current: _Optional[float] = ..., fraction: _Optional[float] = ..., met: _Optional[bool] = ..., remaining: _Optional[float] = ..., expected_by_now: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
