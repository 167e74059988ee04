"""The one place where protobuf messages and domain objects are converted."""

from __future__ import annotations

from datetime import date, datetime, time

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import timeofday_pb2
from google.type.date_pb2 import Date

from fittrack.core.domain.accounts import ProfileChanges
from fittrack.core.domain.aggregation import RangeSummary
from fittrack.core.domain.calendar import make_date
from fittrack.core.domain.errors import InvalidArgument
from fittrack.core.domain.goals import Goal, GoalProgress
from fittrack.core.domain.notifications import Notification, NotificationPreferences
from fittrack.core.domain.oidc import ProviderSettings
from fittrack.core.domain.reports import MetricReport, Report
from fittrack.core.services.accounts import Account, Session
from fittrack.core.services.metrics import RawBatch
from fittrack.generated.v1 import (
    account_pb2,
    goal_pb2,
    metric_pb2,
    notification_pb2,
    report_pb2,
)


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def timestamp_of_minute(minute: int) -> Timestamp:
    return Timestamp(seconds=minute * 60)


def proto_date(day: date | None) -> Date | None:
    return Date(year=day.year, month=day.month, day=day.day) if day else None


def domain_date(message: Date, what: str) -> date:
    return make_date(message.year, message.month, message.day, what)


def optional_date(parent, field: str, what: str) -> date | None:
    return domain_date(getattr(parent, field), what) if parent.HasField(field) else None


# --- accounts ---


def profile_changes(fields: account_pb2.ProfileFields) -> ProfileChanges:
    def optional(name: str):
        return getattr(fields, name) if fields.HasField(name) else None

    return ProfileChanges(
        display_name=optional("display_name"),
        height_cm=optional("height_cm"),
        weight_kg=optional("weight_kg"),
        birth_date=optional_date(fields, "birth_date", "birth_date"),
        stated_age=optional("age_years"),
        sex=optional("sex"),
        time_zone=optional("time_zone"),
    )


def profile(account: Account, today: date) -> account_pb2.Profile:
    user, details = account.user, account.user.profile
    return account_pb2.Profile(
        user_id=user.user_id,
        username=user.username,
        display_name=details.display_name,
        height_cm=details.height_cm or 0.0,
        weight_kg=details.weight_kg or 0.0,
        birth_date=proto_date(details.birth_date),
        age_years=details.age_on(today) or 0,
        sex=int(details.sex),
        time_zone=details.time_zone,
        created_at=timestamp(user.created_at),
        password_expires_at=timestamp(account.password_expires_at),
    )


def session(session: Session) -> account_pb2.LoginResponse:
    return account_pb2.LoginResponse(
        access_token=session.access_token,
        access_token_expires_at=timestamp(session.access_expires_at),
        refresh_token=session.refresh_token,
        refresh_token_expires_at=timestamp(session.refresh_expires_at),
        user_id=session.user_id,
        password_expires_at=timestamp(session.password_expires_at),
        password_expires_in_days=session.password_expires_in_days,
        warnings=list(session.warnings),
    )


def sso_providers(providers: list[ProviderSettings]) -> account_pb2.ListSSOProvidersResponse:
    """The public part of each provider's settings: never the client secret."""
    return account_pb2.ListSSOProvidersResponse(
        providers=[
            account_pb2.SSOProvider(name=p.name, issuer=p.issuer, client_id=p.client_id, scopes=list(p.scopes))
            for p in providers
        ]
    )


# --- goals ---


def goal(goal: Goal) -> goal_pb2.Goal:
    return goal_pb2.Goal(
        goal_id=goal.goal_id,
        metric=int(goal.metric),
        period=int(goal.period),
        target=goal.target,
        active=goal.active,
        created_at=timestamp(goal.created_at),
        updated_at=timestamp(goal.updated_at),
        notify=goal.notify,
    )


def goal_progress(progress: GoalProgress) -> goal_pb2.GoalProgress:
    return goal_pb2.GoalProgress(
        goal=goal(progress.goal),
        period_start=proto_date(progress.period_start),
        period_end=proto_date(progress.period_end),
        current=progress.current,
        fraction=progress.fraction,
        met=progress.met,
        remaining=progress.remaining,
        expected_by_now=progress.expected_by_now,
        as_of=timestamp(progress.as_of),
    )


# --- metrics ---


def raw_batch(batch: metric_pb2.ReadingBatch) -> RawBatch:
    return RawBatch(
        device_id=batch.device_id,
        sequence=batch.sequence,
        readings=[(r.metric, r.time.seconds, r.value) for r in batch.readings],
    )


def view_range(request: metric_pb2.ViewMetricRequest) -> tuple[int | None, tuple[date, date] | None]:
    which = request.WhichOneof("range")
    if which == "preset":
        return request.preset, None
    if which == "dates":
        dates = request.dates
        if not (dates.HasField("start") and dates.HasField("end")):
            raise InvalidArgument("a date range needs both start and end")
        return None, (domain_date(dates.start, "start"), domain_date(dates.end, "end"))
    return None, None


def metric_view(summary: RangeSummary) -> metric_pb2.ViewMetricResponse:
    return metric_pb2.ViewMetricResponse(
        metric=int(summary.metric),
        unit=summary.metric.unit,
        start=proto_date(summary.days[0].day),
        end=proto_date(summary.days[-1].day),
        days=[
            metric_pb2.DailyValue(
                date=proto_date(d.day),
                value=d.value,
                min=d.min if not summary.metric.is_cumulative else 0.0,
                max=d.max if not summary.metric.is_cumulative else 0.0,
                minutes_with_data=d.minutes,
                sources=_source_values(d.sources),
            )
            for d in summary.days
        ],
        total=summary.total,
        average=summary.average,
        min=summary.min if not summary.metric.is_cumulative else 0.0,
        max=summary.max if not summary.metric.is_cumulative else 0.0,
        days_with_data=summary.days_with_data,
        sources=_source_values(summary.sources),
    )


def _source_values(sources) -> list[metric_pb2.SourceValue]:
    return [metric_pb2.SourceValue(source=s.source, value=s.value, minutes_with_data=s.minutes) for s in sources]


# --- reports ---


def _metric_report(section: MetricReport) -> report_pb2.MetricReport:
    message = report_pb2.MetricReport(
        metric=int(section.metric),
        unit=section.metric.unit,
        days=[
            report_pb2.ReportDay(
                date=proto_date(d.day),
                value=d.value,
                goal_target=d.goal_target,
                goal_met=d.goal_met,
                has_data=d.has_data,
            )
            for d in section.days
        ],
        total=section.total,
        average=section.average,
        best_day=proto_date(section.best_day),
        best_value=section.best_value,
        days_goal_met=section.days_goal_met,
        current_streak=section.current_streak,
        days_so_far=section.days_so_far,
        daily_goal_target=section.daily_goal_target,
        weekly_goal_target=section.weekly_goal_target,
        previous_total=section.previous_total,
    )
    if section.change_percent is not None:
        message.change_percent = section.change_percent
    return message


def report(report: Report) -> report_pb2.Report:
    return report_pb2.Report(
        period=int(report.period),
        start=proto_date(report.start),
        end=proto_date(report.end),
        metrics=[_metric_report(m) for m in report.metrics],
    )


# --- notifications ---


def notification(item: Notification) -> notification_pb2.Notification:
    return notification_pb2.Notification(
        notification_id=item.notification_id,
        kind=int(item.kind),
        title=item.title,
        body=item.body,
        goal_id=item.goal_id,
        created_at=timestamp(item.created_at),
        read=item.read,
    )


def preferences(preferences: NotificationPreferences) -> notification_pb2.NotificationPreferences:
    reply = notification_pb2.NotificationPreferences(enabled=preferences.enabled)
    if preferences.quiet_start is not None and preferences.quiet_end is not None:
        reply.quiet_start.CopyFrom(time_of_day(preferences.quiet_start))
        reply.quiet_end.CopyFrom(time_of_day(preferences.quiet_end))
    return reply


def time_of_day(moment: time) -> timeofday_pb2.TimeOfDay:
    return timeofday_pb2.TimeOfDay(hours=moment.hour, minutes=moment.minute)


def optional_time_of_day(message, field: str) -> time | None:
    """A TimeOfDay field as a local time to the minute; None when unset."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    if not (0 <= value.hours <= 23 and 0 <= value.minutes <= 59) or value.seconds or value.nanos:
        raise InvalidArgument(
            f"{field} {value.hours:02d}:{value.minutes:02d}:{value.seconds:02d} is not a time of day to the minute;"
            " use hours 0-23 and minutes 0-59"
        )
    return time(value.hours, value.minutes)
