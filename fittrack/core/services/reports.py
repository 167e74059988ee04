"""Week and month reports, and downloads of any range."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from fittrack.core.domain.accounts import Principal
from fittrack.core.domain.calendar import check_range, local_today, zone_named
from fittrack.core.domain.errors import Unauthenticated, Unavailable
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.reports import (
    MAX_DOWNLOAD_DAYS,
    Report,
    ReportFormat,
    ReportPeriod,
    metric_report,
    previous_bounds,
    range_report,
    render_csv,
    report_bounds,
)
from fittrack.core.ports import AccountsUnitOfWork, MetricStore, ReportRenderer

CSV_FORMAT = int(ReportFormat.CSV)
PDF_FORMAT = int(ReportFormat.PDF)


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content_type: str
    content: bytes


class Reports:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        store: MetricStore,
        clock: Callable[[], datetime],
        renderer: ReportRenderer | None = None,
    ) -> None:
        self._uow = uow
        self._store = store
        self._now = clock
        self._renderer = renderer  # PDF downloads; without one they answer UNAVAILABLE

    def view(self, principal: Principal, period_value: int, anchor: date | None) -> Report:
        period = ReportPeriod.parse(period_value)
        with self._uow() as uow:
            user = uow.users.get(principal.user_id)
            goals = uow.goals.list_for_user(principal.user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        today = local_today(zone_named(user.profile.time_zone), self._now())
        bounds = report_bounds(period, anchor, today)
        before = previous_bounds(period, bounds[0])
        sections = []
        for metric in MetricKind:
            stored = self._store.days(principal.user_id, metric, *bounds)
            previous = self._store.days(principal.user_id, metric, *before)
            own_goals = [g for g in goals if g.metric is metric]
            sections.append(metric_report(metric, bounds, before, stored, previous, own_goals, today))
        return Report(period, bounds[0], bounds[1], tuple(sections))

    def download(self, principal: Principal, start: date, end: date, file_format: int) -> ReportFile:
        """The whole file of the caller's own days start..end (local days, as stored)."""
        kind = ReportFormat.parse(file_format)
        check_range(start, end, MAX_DOWNLOAD_DAYS)
        if kind is ReportFormat.CSV:
            stored = self._stored(principal, start, end)
            return ReportFile(f"fittrack-{start}-{end}.csv", "text/csv", render_csv(start, end, stored))
        if self._renderer is None:
            raise Unavailable("this server cannot draw PDF reports; download CSV instead")
        with self._uow() as uow:
            user = uow.users.get(principal.user_id)
            goals = uow.goals.list_for_user(principal.user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        stored = self._stored(principal, start, end)
        figures = range_report(user.username, start, end, stored, goals, user.profile.display_name)
        content = self._renderer.render(figures)
        name = f"fittrack-{start}-{end}.{self._renderer.extension}"
        return ReportFile(name, self._renderer.content_type, content)

    def _stored(self, principal: Principal, start: date, end: date):
        return {metric: self._store.days(principal.user_id, metric, start, end) for metric in MetricKind}
