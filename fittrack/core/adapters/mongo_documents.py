"""The metric store's documents in MongoDB: their keys, field names, and the writes of a group.

Everything here is about the shape of the documents (fittrack/core/adapters/mongo_layout.py
describes it); nothing talks to the server but Pending, which a store hands
the collection to read from and write to.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from urllib.parse import unquote

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from fittrack.core.adapters.minute_blob import decoded, ends, minutes_of
from fittrack.core.domain.aggregation import DaySummary, SourceFigures
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.placement import Lookup

# The wedge described in core/adapters/mongo.py needs commands x (updates per command - 1) + 1 > pool_max_conns.
# With 8 updates per command and one command at a time per process, FerretDB's 50 connections serve 7 writing
# processes at once (persisters and fittrack-migrate) with room left for reads; infra/services.sh sets 50.
MAX_UPDATES_PER_COMMAND = 8

# Characters left as they are in a source's field name; everything else is %XX
# (UTF-8). Besides '.', '$' and '%', FerretDB 1.x rejects path elements with
# leading or trailing spaces, so anything unusual is escaped.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# An empty field name is not allowed; '%' alone is never the escape of a non-empty name.
_EMPTY_SOURCE = "%"


def escape_source(source: str) -> str:
    if not source:
        return _EMPTY_SOURCE
    return "".join(ch if ch in _SAFE else "".join(f"%{byte:02X}" for byte in ch.encode()) for ch in source)


def unescape_source(key: str) -> str:
    return "" if key == _EMPTY_SOURCE else unquote(key, errors="strict")


def source_figures(stored: dict) -> tuple[SourceFigures, ...]:
    figures = [
        SourceFigures(unescape_source(key), float(own["value"]), int(own["minutes"])) for key, own in stored.items()
    ]
    return tuple(sorted(figures, key=lambda own: own.source))


def day_summary(day: date, daily: dict) -> DaySummary:
    """The daily figures of one metric as a day document holds them under `d.<metric>`."""
    return DaySummary(
        day,
        float(daily["value"]),
        float(daily["min"]),
        float(daily["max"]),
        int(daily["minutes"]),
        source_figures(daily.get("sources", {})),
    )


def doc_id(user_id: str, day: date) -> str:
    return f"{user_id}:{day.isoformat()}"


def month_key(user_id: str, day: date) -> str:
    return f"{user_id}:{day.isoformat()[:7]}"


def months(start: date, end: date) -> list[date]:
    """The first day of each month that [start, end] touches."""
    months, month = [], start.replace(day=1)
    while month <= end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def field_in(document: dict, metric: MetricKind) -> bool:
    """Whether a day document holds the daily figures of `metric`."""
    return str(int(metric)) in document.get("d", {})


def minutes_by_source(document: dict, metric: int) -> dict[str, dict[int, float]]:
    """Every source's minutes of one metric in a day document, by escaped source; blobs win over legacy fields."""
    found: dict[str, dict[int, float]] = {}
    for source, fields in document.get("m", {}).get(str(metric), {}).items():
        found[source] = {int(field[1:]): float(value) for field, value in fields.items()}
    for source, blob in document.get("b", {}).get(str(metric), {}).items():
        found.setdefault(source, {}).update(decoded(blob))
    return found


def held_minutes(
    documents: dict[date, dict], lookups: dict[MetricKind, Lookup]
) -> dict[tuple[MetricKind, date], set[int]]:
    """Every source's minutes of the metrics looked up, by (metric, day), from the minutes documents of those days.

    A source's blob with no minute in the span looked up is left undecoded.
    """
    held: dict[tuple[MetricKind, date], set[int]] = {}
    for day, document in documents.items():
        for metric, lookup in lookups.items():
            if day not in lookup.days:
                continue
            minutes = set()
            for fields in document.get("m", {}).get(str(int(metric)), {}).values():
                minutes.update(int(field[1:]) for field in fields)
            for blob in document.get("b", {}).get(str(int(metric)), {}).values():
                first, last = ends(blob)
                if first <= lookup.last and last >= lookup.first:
                    minutes.update(minutes_of(blob))
            if minutes:
                held[(metric, day)] = minutes
    return held


# Counts a document's writes; a write is made only where the count is still what was read (Pending.flush).
REVISION = "rev"
DUPLICATE_KEY = 11000


class WrittenMeanwhile(Unavailable):
    """Another writer changed a document between this writer's read and its write; nothing stale was written.
    A try again from a fresh read succeeds: hence Unavailable."""


def _as_read(revision: int | None) -> object:
    # Not an equality with None: an upsert would copy it into the new document, and $inc cannot add to null.
    return {"$exists": False} if revision is None else revision


class Pending:
    """The day documents of one collection a group of writes has read, and the writes made to them.

    Reads inside the group see the writes made before them. A day written by
    several calls costs FerretDB one read and one write. flush() sends them in
    commands of at most MAX_UPDATES_PER_COMMAND, one command at a time per
    process (`one_command_at_a_time`): see the store's module docstring.
    """

    def __init__(self, collection, one_command_at_a_time: threading.Lock, month_keys: bool) -> None:
        self._collection = collection
        self._one_command = one_command_at_a_time
        self._month_keys = month_keys
        self._documents: dict[str, dict] = {}
        self._revisions: dict[str, int | None] = {}  # REVISION as read: the write goes only where it still is
        self._updates: dict[str, dict[str, dict]] = {}

    def document(self, user_id: str, day: date) -> dict:
        key = doc_id(user_id, day)
        if key not in self._documents:
            self._documents[key] = self._collection.find_one({"_id": key}) or {}
            self._revisions[key] = self._documents[key].get(REVISION)
        return self._documents[key]

    def cached(self, user_id: str, day: date) -> dict | None:
        return self._documents.get(doc_id(user_id, day))

    def set(self, user_id: str, day: date, path: tuple[str, ...], value) -> None:
        node = document = self.document(user_id, day)
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if document.get("_id") and node.get(path[-1]) == value:
            return  # applied again (a replay): writing the same would only move the revision on
        node[path[-1]] = value
        self._update(user_id, day)["$set"][".".join(path)] = value

    def unset(self, user_id: str, day: date, path: tuple[str, ...]) -> None:
        node = self.document(user_id, day)
        for part in path[:-1]:
            node = node.get(part, {})
        if path[-1] not in node:
            return
        node.pop(path[-1], None)
        self._update(user_id, day)["$unset"][".".join(path)] = ""

    def _update(self, user_id: str, day: date) -> dict[str, dict]:
        key = doc_id(user_id, day)
        if key not in self._updates:
            self._updates[key] = {
                # `um` is set on every write, so documents written before it existed get it as they change.
                "$set": {"um": month_key(user_id, day)} if self._month_keys else {},
                "$unset": {},
                "$setOnInsert": {"user_id": user_id, "date": day.isoformat()},
                "$inc": {REVISION: 1},
            }
        return self._updates[key]

    def flush(self) -> None:
        """Write what changed, each document only if no one wrote it since it was read (compare and set).

        The writes are read-modify-write, safe while one persister writes a user's documents. During a
        rebalance a persister that lost its partitions without knowing it yet (cut off, then back) may still
        write: without the check its stale copy would overwrite the new owner's writes (seen in the cluster's
        fault tests: a batch acknowledged, claimed and then lost). A document changed meanwhile fails the
        group with WrittenMeanwhile; the persister applies the batches again, from a fresh read.
        """
        updates = [
            UpdateOne(
                {"_id": key, REVISION: _as_read(self._revisions.get(key))},
                {op: fields for op, fields in update.items() if fields},
                upsert=True,
            )
            for key, update in sorted(self._updates.items())
        ]
        try:
            for start in range(0, len(updates), MAX_UPDATES_PER_COMMAND):
                with self._one_command:
                    self._collection.bulk_write(updates[start : start + MAX_UPDATES_PER_COMMAND], ordered=False)
        except BulkWriteError as error:
            # Upserting a document whose revision moved on collides with it on _id.
            if all(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise WrittenMeanwhile(f"{len(error.details['writeErrors'])} document(s) written meanwhile") from error
            raise
        except KeyError as error:
            # FerretDB 1.x leaves nModified out of a reply that has write errors, and pymongo then fails with
            # KeyError('nModified') instead of BulkWriteError: look whether a revision moved on.
            moved = [key for key in self._updates if self._revision_now(key) != self._revisions.get(key)]
            if error.args != ("nModified",) or not moved:
                raise
            raise WrittenMeanwhile(f"{len(moved)} document(s) written meanwhile") from None
        finally:
            self._updates.clear()

    def _revision_now(self, key: str) -> int | None:
        return (self._collection.find_one({"_id": key}, {REVISION: 1}) or {}).get(REVISION)
