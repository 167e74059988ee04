"""Store calls timed into fittrack_store_operation_seconds: proxies the composition root puts around the
metric stores, the accounts units of work and their repositories, so no adapter needs to know about metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from fittrack.core.adapters.instruments import Instruments


class Timed:
    """A proxy that times each public method call of `target` into fittrack_store_operation_seconds.

    operation = f"{prefix}.{method}" (e.g. "metric_store.upsert_minutes"); a call that raises is timed too.
    Methods named in `untimed` (context managers, close) pass through as they are.
    """

    UNTIMED = frozenset({"close", "grouped", "transaction"})

    def __init__(self, target, instruments: Instruments, store: str, prefix: str) -> None:
        self.__dict__["_target"] = target
        self.__dict__["_instruments"] = instruments
        self.__dict__["_store"] = store
        self.__dict__["_prefix"] = prefix

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if name.startswith("_") or name in self.UNTIMED or not callable(value):
            return value
        observe = self._instruments.store_observer(self._store, f"{self._prefix}.{name}")

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                observe(time.perf_counter() - started)

        self.__dict__[name] = timed  # the next lookup skips __getattr__
        return timed

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"Timed({self._target!r})"


class TimedUnitOfWork:
    """An accounts unit of work whose repositories' calls, commit and rollback are timed (operation "users.get")."""

    def __init__(self, target, instruments: Instruments, store: str) -> None:
        self._target = target
        self._instruments = instruments
        self._store = store
        self._repositories: dict[str, Timed] = {}

    def __enter__(self):
        self._target.__enter__()
        self._repositories.clear()  # a unit may make its repositories afresh for each transaction
        return self

    def __exit__(self, *exc_info):
        return self._target.__exit__(*exc_info)

    def commit(self) -> None:
        started = time.perf_counter()
        try:
            self._target.commit()
        finally:
            self._instruments.store_observer(self._store, "uow.commit")(time.perf_counter() - started)

    def rollback(self) -> None:
        self._target.rollback()

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if name.startswith("_") or callable(value):
            return value
        timed = self._repositories.get(name)
        if timed is None:
            timed = self._repositories[name] = Timed(value, self._instruments, self._store, name)
        return timed


def timed_units(make_uow: Callable[[], object], instruments: Instruments, store: str) -> Callable[[], object]:
    """A unit-of-work factory whose units are timed; the factory itself when metrics are off."""
    if not instruments.enabled:
        return make_uow
    return lambda: TimedUnitOfWork(make_uow(), instruments, store)


def timed(target, instruments: Instruments, store: str, prefix: str):
    """`target` with its calls timed; `target` itself when metrics are off."""
    if not instruments.enabled:
        return target
    return Timed(target, instruments, store, prefix)
