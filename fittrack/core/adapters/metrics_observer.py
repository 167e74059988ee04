"""The Observer that turns what the services saw (fittrack.core.domain.events) into Prometheus counters.

Only the kind of event and its fixed fields (method, outcome, counts) reach a label or a value: the user ids
and addresses events carry are for the audit log and never become a label.
"""

from __future__ import annotations

from collections.abc import Callable

from fittrack.core.adapters.instruments import Instruments
from fittrack.core.domain import events
from fittrack.core.ports import Observer, Unobserved


class MetricsObserver(Observer):
    def __init__(self, instruments: Instruments) -> None:
        self._i = instruments
        self._record: dict[type[events.Event], Callable] = {
            events.LoginAttempted: self._login,
            events.AddressThrottled: lambda _: instruments.throttled_addresses.inc(),
            events.AccountThrottled: lambda _: instruments.throttled_accounts.inc(),
            events.RefreshTokenReused: lambda _: instruments.refresh_reuse.inc(),
            events.NotificationsStored: lambda event: instruments.notifications_stored.inc(event.count),
            events.NotificationPushed: lambda _: instruments.notifications_pushed.inc(),
            events.PushRetried: lambda _: instruments.push_retries.inc(),
            events.NotificationDeadLettered: lambda _: instruments.dead_lettered.inc(),
            events.EvaluationSlotRun: self._slot,
        }
        # Present at 0 from the start, so an alert on a rate sees the series before the first failure.
        for method in events.LoginMethod:
            for outcome in events.LoginOutcome:
                instruments.logins.labels(method.value, outcome.value)

    def saw(self, event: events.Event) -> None:
        record = self._record.get(type(event))
        if record is not None:  # an event the metrics do not count (a password change): the audit log's
            record(event)

    def _login(self, event: events.LoginAttempted) -> None:
        self._i.logins.labels(event.method.value, event.outcome.value).inc()

    def _slot(self, event: events.EvaluationSlotRun) -> None:
        self._i.evaluator_slots.inc()
        self._i.evaluator_users.inc(event.users)
        self._i.evaluator_slot_seconds.observe(event.seconds)


def metrics_observer(instruments: Instruments) -> Observer:
    """A MetricsObserver on these instruments; Unobserved when metrics are off, so an event costs nothing."""
    if not instruments.enabled:
        return Unobserved()
    return MetricsObserver(instruments)
