"""Observers: the one observer a process hands its services, telling each of its listeners in turn."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fittrack.core.domain.events import Event
from fittrack.core.ports import Observer

log = logging.getLogger(__name__)


class Observers(Observer):
    """Every listener sees every event, in order; one that raises is logged and the others still hear it,
    since the event was reported on the path of a request that must go on."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.observers = list(observers)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def saw(self, event: Event) -> None:
        for observer in self.observers:
            try:
                observer.saw(event)
            except Exception:  # noqa: BLE001 - a listener's fault must not fail the request that reported it
                log.exception("%s failed on %s", type(observer).__name__, type(event).__name__)
