import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import timeofday_pb2 as _timeofday_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_KIND_UNSPECIFIED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_GOAL_MET: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_BEHIND_GOAL: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_REPORT_READY: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PASSWORD_EXPIRING: _ClassVar[NotificationKind]
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
NOTIFICATION_KIND_GOAL_MET: NotificationKind
NOTIFICATION_KIND_BEHIND_GOAL: NotificationKind
NOTIFICATION_KIND_REPORT_READY: NotificationKind
NOTIFICATION_KIND_PASSWORD_EXPIRING: NotificationKind

class NotificationPreferences(_message.Message):
    __slots__ = ("enabled", "quiet_start", "quiet_end")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    QUIET_START_FIELD_NUMBER: _ClassVar[int]
    QUIET_END_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    quiet_start: _timeofday_pb2.TimeOfDay
    quiet_end: _timeofday_pb2.TimeOfDay
    def __init__(self, enabled: _Optional[bool] = ..., quiet_start: _Optional[_Union[_timeofday_pb2.TimeOfDay, _Mapping]] = ..., quiet_end: _Optional[_Union[_timeofday_pb2.TimeOfDay, _Mapping]] = ...) -> None: ...

class GetNotificationPreferencesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateNotificationPreferencesRequest(_message.Message):
    __slots__ = ("enabled", "quiet_start", "quiet_end", "clear_quiet_hours")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    QUIET_START_FIELD_NUMBER: _ClassVar[int]
    QUIET_END_FIELD_NUMBER: _ClassVar[int]
    CLEAR_QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    quiet_start: _timeofday_pb2.TimeOfDay
    quiet_end: _timeofday_pb2.TimeOfDay
    clear_quiet_hours: bool
    def __init__(self, enabled: _Optional[bool] = ..., quiet_start: _Optional[_Union[_timeofday_pb2.TimeOfDay, _Mapping]] = ..., quiet_end: _Optional[_Union[_timeofday_pb2.TimeOfDay, _Mapping]] = ..., clear_quiet_hours: _Optional[bool] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("notification_id", "kind", "title", "body", "goal_id", "created_at", "read")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    GOAL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    kind: NotificationKind
    title: str
    body: str
    goal_id: str
    created_at: _timestamp_pb2.Timestamp
    read: bool
    def __init__(self, notification_id: _Optional[str] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., goal_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read: _Optional[bool] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("unread_only", "page_size", "page_token")
    UNREAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    unread_only: bool
    page_size: int
    page_token: str
    def __init__(self, unread_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token", "unread_count")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    next_page_token: str
    unread_count: int
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., unread_count: _Optional[int] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("notification_ids",)
    NOTIFICATION_IDS_FIELD_NUMBER: _ClassVar[int]
    notification_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, notification_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("marked",)
    MARKED_FIELD_NUMBER: _ClassVar[int]
    marked: int
    def __init__(self, marked: _Optional[int] = ...) -> None: ...

class SubscribeNotificationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
