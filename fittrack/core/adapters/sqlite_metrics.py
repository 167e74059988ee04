"""The embedded profile's metric store: minutes and daily summaries in the SQLite file."""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING

from fittrack.core.adapters.minute_blob import decoded, encoded, ends, merged, minutes_of
from fittrack.core.domain.aggregation import DaySummary, SourceFigures, summarize_sources
from fittrack.core.domain.metrics import MetricKind, PlacedReading
from fittrack.core.domain.placement import Lookup, Write, place_minutes
from fittrack.core.ports import MetricStore

if TYPE_CHECKING:
    # Only a type here: schema 12's migration, which sqlite.py runs, imports this module.
    from fittrack.core.adapters.sqlite import SqliteDatabase


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
        if not readings:
            return set()
        write = Write.of(readings)
        with self._writing() as conn:
            stored = _days_of(conn, user_id, write.lookups)
            placed = place_minutes(write, _held(stored, write.lookups))
            conn.executemany(
                "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        user_id,
                        int(metric),
                        day.toordinal(),
                        source,
                        merged(stored.get((metric, day), {}).get(source), values),
                    )
                    for (metric, day), values in placed.items()
                ],
            )
        return set(placed)

    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        rows = self._db.connection().execute(
            "SELECT source, minutes FROM day_minutes WHERE user_id = ? AND metric = ? AND local_date = ?",
            (user_id, int(metric), day.toordinal()),
        )
        return {source: decoded(blob) for source, blob in rows}

    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        with self._writing() as conn:
            _save_days(conn, user_id, metric, summaries)

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


def _days_of(
    conn: sqlite3.Connection, user_id: str, lookups: dict[MetricKind, Lookup]
) -> dict[tuple[MetricKind, date], dict[str, bytes]]:
    """Every source's blob of each day looked up, by (metric, day)."""
    stored: dict[tuple[MetricKind, date], dict[str, bytes]] = {}
    for metric, lookup in lookups.items():
        for first, last in _runs(sorted(day.toordinal() for day in lookup.days)):
            for day, source, blob in conn.execute(
                "SELECT local_date, source, minutes FROM day_minutes"
                " WHERE user_id = ? AND metric = ? AND local_date BETWEEN ? AND ?",
                (user_id, int(metric), first, last),
            ):
                stored.setdefault((metric, date.fromordinal(day)), {})[source] = blob
    return stored


def _held(
    stored: dict[tuple[MetricKind, date], dict[str, bytes]], lookups: dict[MetricKind, Lookup]
) -> dict[tuple[MetricKind, date], array]:
    """Every source's minutes of each day stored, leaving out the blobs with none in the span looked up."""
    held: dict[tuple[MetricKind, date], array] = {}
    for (metric, day), blobs in stored.items():
        lookup = lookups[metric]
        for blob in blobs.values():
            first, last = ends(blob)
            # Usually a day's minutes all lie before or after those written: no need to decode them.
            if first <= lookup.last and last >= lookup.first:
                minutes = minutes_of(blob)
                held[(metric, day)] = held[(metric, day)] + minutes if (metric, day) in held else minutes
    return held


def _runs(days: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted days as (first, last) runs of consecutive days."""
    first = previous = days[0]
    for day in days[1:]:
        if day != previous + 1:
            yield first, previous
            first = day
        previous = day
    yield first, previous


def _save_days(conn: sqlite3.Connection, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO daily_values (user_id, metric, local_date, value, min, max, minutes, sources)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (user_id, int(metric), s.day.toordinal(), s.value, s.min, s.max, s.minutes, _sources_json(s))
            for s in summaries
        ],
    )


def _sources_json(summary: DaySummary) -> str:
    return json.dumps([[f.source, f.value, f.minutes] for f in summary.sources], separators=(",", ":"))


def _sources_of(text: str) -> tuple[SourceFigures, ...]:
    return tuple(SourceFigures(source, value, minutes) for source, value, minutes in json.loads(text))


# --- the one-off move of minutes left on two days ------------------------------------------------

# How many days before its own a copy of a minute can be: the days a minute falls on in some time zone span three.
_FARTHEST_COPY = 2


def keep_each_minute_on_one_day(conn: sqlite3.Connection) -> None:
    """Schema 12: a minute that two sources left on two days moves to the earlier one, where it counts once.

    Before schema 2 each source pinned only its own minutes to their first day,
    so after a move to another time zone a second device could place a minute
    on a second day, and it counted on both. Each day's minutes are placed again,
    one day after the other, as place_minutes places a write: a minute held on
    an earlier day it can be on joins it there. The figures of every day that
    changed are computed again. Safe to run again: every minute is on one day
    by then, and nothing changes.
    """
    rows = conn.execute(
        "SELECT user_id, metric, local_date, source, minutes FROM day_minutes ORDER BY user_id, metric, local_date"
    )
    changed: dict[tuple[str, int, int], dict[str, bytes]] = {}  # a source's new blob; empty: none left
    for (user_id, metric), of_metric in itertools.groupby(rows, key=operator.itemgetter(0, 1)):
        recent: dict[int, dict[str, bytes]] = {}  # each day's blobs, as far back as a copy can be
        for day, of_day in itertools.groupby(of_metric, key=operator.itemgetter(2)):
            recent = {other: blobs for other, blobs in recent.items() if other >= day - _FARTHEST_COPY}
            recent[day] = {source: blob for *_, source, blob in of_day}
            for source, moves in _copies_on_earlier_days(MetricKind(metric), day, recent).items():
                left = decoded(recent[day].pop(source))
                for other, values in moves.items():
                    for minute in values:
                        del left[minute]
                    recent[other][source] = merged(recent[other].get(source), values)
                    changed.setdefault((user_id, metric, other), {})[source] = recent[other][source]
                if left:
                    recent[day][source] = encoded(left)
                changed.setdefault((user_id, metric, day), {})[source] = recent[day].get(source, b"")
    for (user_id, metric, day), blobs in changed.items():
        for source, blob in blobs.items():
            if blob:
                conn.execute(
                    "INSERT OR REPLACE INTO day_minutes (user_id, metric, local_date, source, minutes)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (user_id, metric, day, source, blob),
                )
            else:
                conn.execute(
                    "DELETE FROM day_minutes WHERE user_id = ? AND metric = ? AND local_date = ? AND source = ?",
                    (user_id, metric, day, source),
                )
        _summarize_again(conn, user_id, MetricKind(metric), date.fromordinal(day))


def _copies_on_earlier_days(
    metric: MetricKind, day: int, recent: dict[int, dict[str, bytes]]
) -> dict[str, dict[int, dict[int, float]]]:
    """The minutes of `day` that place_minutes places on an earlier day: source -> {that day: {minute: value}}."""
    spans = {other: [ends(blob) for blob in blobs.values()] for other, blobs in recent.items()}
    first, last = min(low for low, _ in spans[day]), max(high for _, high in spans[day])
    # Usually the days before hold only earlier minutes: then nothing is decoded.
    if not any(low <= last and high >= first for other in spans if other < day for low, high in spans[other]):
        return {}
    held = {
        (metric, date.fromordinal(other)): set().union(*map(minutes_of, blobs.values()))
        for other, blobs in recent.items()
    }
    moves: dict[str, dict[int, dict[int, float]]] = {}
    for source, blob in recent[day].items():
        again = [PlacedReading(metric, minute, value, date.fromordinal(day)) for minute, value in decoded(blob).items()]
        for (_, placed_on), values in place_minutes(Write.of(again), held).items():
            if placed_on.toordinal() != day:
                moves.setdefault(source, {})[placed_on.toordinal()] = values
    return moves


def _summarize_again(conn: sqlite3.Connection, user_id: str, metric: MetricKind, day: date) -> None:
    rows = conn.execute(
        "SELECT source, minutes FROM day_minutes WHERE user_id = ? AND metric = ? AND local_date = ?",
        (user_id, int(metric), day.toordinal()),
    )
    summary = summarize_sources(metric, day, {source: decoded(blob) for source, blob in rows})
    if summary.has_data:
        _save_days(conn, user_id, metric, [summary])
    else:
        conn.execute(
            "DELETE FROM daily_values WHERE user_id = ? AND metric = ? AND local_date = ?",
            (user_id, int(metric), day.toordinal()),
        )
