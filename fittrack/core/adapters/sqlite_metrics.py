"""The embedded profile's metric store: minutes and daily summaries in the SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from fittrack.core.adapters.minute_blob import decoded, ends, merged, minutes_of
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.domain.aggregation import DaySummary, SourceFigures
from fittrack.core.domain.metrics import MetricKind, PlacedReading, possible_local_days
from fittrack.core.ports import (
    MetricStore,
)


class SqliteMetricStore(MetricStore):
    """Minutes in day_minutes, one blob per (user, metric, local day, source); summaries in daily_values.

    A write reads and rewrites the few blobs it touches, in one transaction,
    or in the transaction of the enclosing grouped() block.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._group = threading.local()

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """One transaction for the block, on this thread's connection.

        It holds the database's write lock until the block ends (the ingest
        log's writer waits meanwhile), and the accounts' unit of work shares
        the connection, so open none on this thread inside the block.
        """
        if getattr(self._group, "conn", None) is not None:
            yield
            return
        with self._db.transaction() as conn:
            self._group.conn = conn
            try:
                yield
            finally:
                self._group.conn = None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._group, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._db.transaction() as conn:
            yield conn

    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        fresh = _first_day_last_value(readings)
        if not fresh:
            return set()
        bounds = {key: (min(values), max(values)) for key, values in fresh.items()}
        with self._writing() as conn:
            stored = self._days_around(conn, user_id, bounds)
            rows = []
            for (metric, day), values in _placed(source, fresh, bounds, stored).items():
                blob = merged(stored.get((metric, day), {}).get(source), values)
                rows.append((user_id, metric, day, source, blob))
            conn.executemany(
                "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return {(MetricKind(metric), date.fromordinal(day)) for _, metric, day, _, _ in rows}

    @staticmethod
    def _days_around(
        conn: sqlite3.Connection, user_id: str, bounds: dict[tuple[int, int], tuple[int, int]]
    ) -> dict[tuple[int, int], dict[str, bytes]]:
        """Every source's blobs of each day that can hold one of the minutes (see _possible_days)."""
        days: dict[int, set[int]] = {}
        for (metric, day), (low, high) in bounds.items():
            days.setdefault(metric, set()).update(_possible_days(day, low, high))
        stored: dict[tuple[int, int], dict[str, bytes]] = {}
        for metric, wanted in days.items():
            for first, last in _runs(sorted(wanted)):
                for day, source, blob in conn.execute(
                    "SELECT local_date, source, minutes FROM day_minutes"
                    " WHERE user_id = ? AND metric = ? AND local_date BETWEEN ? AND ?",
                    (user_id, metric, first, last),
                ):
                    stored.setdefault((metric, day), {})[source] = blob
        return stored

    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        rows = self._db.connection().execute(
            "SELECT source, minutes FROM day_minutes WHERE user_id = ? AND metric = ? AND local_date = ?",
            (user_id, int(metric), day.toordinal()),
        )
        return {source: decoded(blob) for source, blob in rows}

    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        with self._writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (user_id, int(metric), s.day.toordinal(), s.value, s.min, s.max, s.minutes, _sources_json(s))
                    for s in summaries
                ],
            )

    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        rows = self._db.connection().execute(
            "SELECT local_date, value, min, max, minutes, sources FROM daily_values"
            " WHERE user_id = ? AND metric = ? AND local_date BETWEEN ? AND ? ORDER BY local_date",
            (user_id, int(metric), start.toordinal(), end.toordinal()),
        )
        return [
            DaySummary(date.fromordinal(day), value, low, high, minutes, _sources_of(sources))
            for day, value, low, high, minutes, sources in rows
        ]

    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        kinds = ",".join(str(int(metric)) for metric in metrics)
        conn = self._db.connection()
        for offset in range(0, len(user_ids), 500):
            chunk = list(user_ids[offset : offset + 500])
            rows = conn.execute(
                "SELECT user_id, metric, local_date, value FROM daily_values"
                f" WHERE user_id IN ({','.join('?' * len(chunk))}) AND metric IN ({kinds})"
                " AND local_date BETWEEN ? AND ?",
                (*chunk, start.toordinal(), end.toordinal()),
            )
            for user_id, metric, day, value in rows:
                found.setdefault(user_id, {}).setdefault(MetricKind(metric), {})[date.fromordinal(day)] = value
        return found

    def delete_user(self, user_id: str) -> None:
        with self._writing() as conn:
            conn.execute("DELETE FROM day_minutes WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM daily_values WHERE user_id = ?", (user_id,))


def _first_day_last_value(readings: Sequence[PlacedReading]) -> dict[tuple[int, int], dict[int, float]]:
    """The readings as (metric, local day ordinal) -> {minute: value}.

    As if they were stored one by one: a repeated minute keeps the day it
    came with first, and its last value.
    """
    by_day: dict[tuple[MetricKind, date], dict[int, float]] = {}
    for reading in readings:
        key = (reading.metric, reading.local_date)
        values = by_day.get(key)
        if values is None:
            values = by_day[key] = {}
        values[reading.minute] = reading.value
    fresh = {(int(metric), day.toordinal()): values for (metric, day), values in by_day.items()}
    days_of = Counter(metric for metric, _ in fresh)
    for metric in [metric for metric, days in days_of.items() if days > 1]:
        # Readings of one metric on several days (a batch across midnight, or a
        # time-zone change): only a minute on two of them needs the slow path.
        groups = [values for (kind, _), values in fresh.items() if kind == metric]
        if sum(map(len, groups)) == len(set().union(*groups)):
            continue
        for key in [key for key in fresh if key[0] == metric]:
            del fresh[key]
        first_day: dict[int, int] = {}
        for reading in readings:
            if reading.metric == metric:
                day = first_day.setdefault(reading.minute, reading.local_date.toordinal())
                fresh.setdefault((metric, day), {})[reading.minute] = reading.value
    return fresh


def _placed(
    source: str,
    fresh: dict[tuple[int, int], dict[int, float]],
    bounds: dict[tuple[int, int], tuple[int, int]],
    stored: dict[tuple[int, int], dict[str, bytes]],
) -> dict[tuple[int, int], dict[int, float]]:
    """`fresh` with each minute already stored on another day moved to that day.

    A minute keeps the local day it was first placed on, by any source: after a
    time-zone change, a resend or another device's copy of it would otherwise
    land on a second day and count twice. Only data from before that rule can
    hold a minute on two days; then, as schema 4's primary key had it, a source
    keeps its own copy where it is, and joins the earliest copy otherwise.
    """
    placed: dict[tuple[int, int], dict[int, float]] = {}
    for (metric, day), values in fresh.items():
        low, high = bounds[(metric, day)]
        earliest: dict[int, int] = {}
        own: dict[int, int] = {}
        for other in sorted(_possible_days(day, low, high) - {day}):
            for holder, blob in stored.get((metric, other), {}).items():
                first, last = ends(blob)
                # Usually that day's minutes all lie before or after these: no need to look closer.
                if last < low or first > high:
                    continue
                for minute in values.keys() & minutes_of(blob):
                    earliest.setdefault(minute, other)
                    if holder == source:
                        own[minute] = other
        moved = _moved(source, day, earliest, own, stored.get((metric, day), {})) if earliest else {}
        if moved:
            values = dict(values)
            for minute, other in moved.items():
                placed.setdefault((metric, other), {})[minute] = values.pop(minute)
        if (metric, day) in placed:
            placed[(metric, day)].update(values)
        elif values:
            placed[(metric, day)] = values
    return placed


def _moved(
    source: str, day: int, earliest: dict[int, int], own: dict[int, int], here: dict[str, bytes]
) -> dict[int, int]:
    """Which of the minutes found on other days leave `day`, and for which day (see _placed)."""
    mine_here = set(minutes_of(here[source])) if source in here else set()
    others_here = set().union(*(minutes_of(blob) for holder, blob in here.items() if holder != source))
    moved = {}
    for minute, other in earliest.items():
        if minute in mine_here:
            continue
        if minute in own:
            moved[minute] = own[minute]
        elif other < day or minute not in others_here:
            moved[minute] = other
    return moved


def _possible_days(day: int, low: int, high: int) -> set[int]:
    """The local days (ordinals) that can hold minutes low..high, which now come with `day`.

    The days those minutes fall on in some time zone: a minute falls on two or
    three, so its earlier day can be two away from `day` (placed at UTC+14,
    resent after a move to UTC-12). Plus the days next to `day`, for minutes
    placed by hand rather than by a time zone.
    """
    return {*possible_local_days(low, high), day - 1, day, day + 1}


def _runs(days: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted days as (first, last) runs of consecutive days."""
    first = previous = days[0]
    for day in days[1:]:
        if day != previous + 1:
            yield first, previous
            first = day
        previous = day
    yield first, previous


def _sources_json(summary: DaySummary) -> str:
    return json.dumps([[f.source, f.value, f.minutes] for f in summary.sources], separators=(",", ":"))


def _sources_of(text: str) -> tuple[SourceFigures, ...]:
    return tuple(SourceFigures(source, value, minutes) for source, value, minutes in json.loads(text))
