"""The production profile's metric store: MongoDB (FerretDB 1.x in our deployment).

One document per user per local day, so a day view, a goal check or the
persister's recomputation of a day reads one document:

    {
      "_id": "<user_id>:<YYYY-MM-DD>",
      "user_id": "<user_id>",
      "date": "YYYY-MM-DD",
      "um": "<user_id>:<YYYY-MM>",
      "b": {"<metric>": {"<escaped source>": <binary: the source's minutes of the day>, ...}, ...},
      "d": {"<metric>": {"value": .., "min": .., "max": .., "minutes": ..,
                         "sources": {"<escaped source>": {"value": .., "minutes": ..}, ...}}, ...}
    }

`date` is an ISO string so that string order is date order. Every query is
an equality on one indexed field: `_id` for a day, `um` (the user and the
month) for a range of days, a month at a time, `user_id` to delete a user.
FerretDB 1.x hands only top-level equalities to PostgreSQL (`$in` and
`$gte`/`$lte` it applies itself, after reading every row the equalities
left), and those only reach an index that core/adapters/ferretdb_indexes.py
adds under its table; on MongoDB the same fields have ordinary indexes.

Writes go to FerretDB in commands of at most MAX_UPDATES_PER_COMMAND updates,
one command at a time per process: FerretDB 1.24 holds a pooled PostgreSQL
connection for every update of a command until the whole command returns
(internal/handler/msg_update.go), so a command with as many updates as its
pool has connections (`pool_max_conns`, 50 by default), or several commands
adding up to that, wait for each other for ever.
A source's minutes are one binary value in the layout of core/adapters/minute_blob.py:
FerretDB 1.x converts every field of a document on each read and write, so a
day held as 1,440 fields cost about 10 ms to read and 15 ms to update, and as
one value under 2 ms. Earlier releases wrote a field per minute under "m"
(`"m": {"<metric>": {"<escaped source>": {"t<minute>": value}}}`); those are
still read, and moved into "b" the first time their source is written again.
Source names are escaped because device ids may hold '.', '$', '%' or spaces,
which would split or break a field path.

Only the update operators FerretDB 1.x implements are used ($set, $unset,
$setOnInsert, upsert, unordered bulk_write). Minute values and daily figures
are replaced, never incremented, so a batch applied again leaves the same
document.

Concurrency: FerretDB 1.x reads a document, changes it and writes it back with
no lock, so two concurrent updates of one document can lose one of them. This
store is therefore only safe with ONE WRITER PER USER: every write of a user's
documents comes from the persister consumer that owns the user's Kafka
partition (the `readings` topic is keyed by user id). The API only reads. The
one exception is delete_user, which the API calls after deleting the account:
a document delete cannot be lost that way (FerretDB writes an update back by
_id, which then matches nothing), but a batch the persister accepted just
before the account went can re-create a day, the same window the SQLite store
has between the persister's account check and its write.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from functools import wraps
from typing import TypeVar
from urllib.parse import unquote

import psycopg2
from pymongo import ASCENDING, MongoClient, UpdateOne
from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)
from pymongo.write_concern import WriteConcern

from core.adapters.ferretdb_indexes import FerretDBIndexes
from core.adapters.minute_blob import decoded, encoded, merged
from core.domain.aggregation import DaySummary, SourceFigures
from core.domain.errors import Unavailable
from core.domain.metrics import MetricKind, PlacedReading, possible_local_days
from core.ports import MetricStore

COLLECTION = "metrics"
# Where the store notes the layout of the collection (LAYOUT): version 2 added `um` to every document.
META_COLLECTION = "fittrack_meta"
LAYOUT = {"_id": "metrics_layout", "version": 2}
SERVER_SELECTION_TIMEOUT_MS = 3000
# The wedge in the module docstring needs commands x (updates per command - 1) + 1 > pool_max_conns. With 8
# updates per command and one command at a time per process, FerretDB's 50 connections serve 7 writing
# processes at once (persisters and fittrack-migrate) with room left for reads; infra/services.sh sets 50.
MAX_UPDATES_PER_COMMAND = 8
# The fields queried by equality (see the module docstring).
EQUALITY_FIELDS = ("_id", "um", "user_id")

READ_PREFERENCES = {
    "primary": Primary(),
    "primaryPreferred": PrimaryPreferred(),
    "secondary": Secondary(),
    "secondaryPreferred": SecondaryPreferred(),
    "nearest": Nearest(),
}


# Characters left as they are in a source's field name; everything else is %XX
# (UTF-8). Besides '.', '$' and '%', FerretDB 1.x rejects path elements with
# leading or trailing spaces, so anything unusual is escaped.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# An empty field name is not allowed; '%' alone is never the escape of a non-empty name.
_EMPTY_SOURCE = "%"

_CONNECTION_ERRORS = (ServerSelectionTimeoutError, AutoReconnect, ConnectionFailure, NetworkTimeout)

T = TypeVar("T")

log = logging.getLogger(__name__)


def escape_source(source: str) -> str:
    if not source:
        return _EMPTY_SOURCE
    return "".join(ch if ch in _SAFE else "".join(f"%{byte:02X}" for byte in ch.encode()) for ch in source)


def unescape_source(key: str) -> str:
    return "" if key == _EMPTY_SOURCE else unquote(key, errors="strict")


def _source_figures(stored: dict) -> tuple[SourceFigures, ...]:
    figures = [
        SourceFigures(unescape_source(key), float(own["value"]), int(own["minutes"])) for key, own in stored.items()
    ]
    return tuple(sorted(figures, key=lambda own: own.source))


def doc_id(user_id: str, day: date) -> str:
    return f"{user_id}:{day.isoformat()}"


def month_key(user_id: str, day: date) -> str:
    return f"{user_id}:{day.isoformat()[:7]}"


def _months(start: date, end: date) -> list[date]:
    """The first day of each month that [start, end] touches."""
    months, month = [], start.replace(day=1)
    while month <= end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _possible_days(minute: int) -> Iterable[date]:
    return map(date.fromordinal, possible_local_days(minute, minute))


def _other_days(wanted: dict[tuple[int, int], tuple[date, float]]) -> dict[date, list[tuple[int, int]]]:
    """For each day other than its own that could already hold a minute, the minutes to look for there.

    Only the days the minute falls on in some time zone can hold it: for most
    minutes one day besides its own (the day before or the day after), for
    those between 10:00 and 12:00 UTC both.
    """
    candidates: dict[date, list[tuple[int, int]]] = defaultdict(list)
    for (metric, minute), (day, _) in wanted.items():
        possible = set(_possible_days(minute))
        if day not in possible:
            # A day no time zone gives this minute (hand-made data, as in the
            # contract checks): fall back to the days next to it.
            possible |= {day - timedelta(days=1), day + timedelta(days=1)}
        for other in possible - {day}:
            candidates[other].append((metric, minute))
    return candidates


def field_in(document: dict, metric: MetricKind) -> bool:
    """Whether a day document holds the daily figures of `metric`."""
    return str(int(metric)) in document.get("d", {})


def _minutes_by_source(document: dict, metric: int) -> dict[str, dict[int, float]]:
    """Every source's minutes of one metric in a day document, by escaped source; blobs win over legacy fields."""
    found: dict[str, dict[int, float]] = {}
    for source, fields in document.get("m", {}).get(str(metric), {}).items():
        found[source] = {int(field[1:]): float(value) for field, value in fields.items()}
    for source, blob in document.get("b", {}).get(str(metric), {}).items():
        found.setdefault(source, {}).update(decoded(blob))
    return found


def _placed_elsewhere(
    documents: dict[date, dict], candidates: dict[date, list[tuple[int, int]]]
) -> dict[tuple[int, int], date]:
    """The minutes already stored, by any source, on another day than the one they come with."""
    found: dict[tuple[int, int], date] = {}
    for other in sorted(candidates):
        document = documents.get(other)
        if not document:
            continue
        held: dict[int, set[int]] = {}
        for metric, minute in candidates[other]:
            if metric not in held:
                held[metric] = {m for minutes in _minutes_by_source(document, metric).values() for m in minutes}
            if minute in held[metric]:
                # The earliest such day wins; only a past double write could leave two.
                found.setdefault((metric, minute), other)
    return found


def _mapped_errors(method: Callable[..., T]) -> Callable[..., T]:
    @wraps(method)
    def wrapper(*args, **kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except _CONNECTION_ERRORS as error:
            raise Unavailable("the metric store is unavailable; try again") from error

    return wrapper


class _Pending:
    """The day documents a group of writes has read, and the writes made to them, sent in one bulk_write.

    Reads inside the group see the writes made before them. A day written by
    upsert_minutes and then by save_days costs FerretDB one read and one write
    instead of three reads and two writes.
    """

    def __init__(self, collection, one_command_at_a_time: threading.Lock) -> None:
        self._collection = collection
        self._one_command = one_command_at_a_time
        self._documents: dict[str, dict] = {}
        self._updates: dict[str, dict[str, dict]] = {}

    def document(self, user_id: str, day: date) -> dict:
        key = doc_id(user_id, day)
        if key not in self._documents:
            self._documents[key] = self._collection.find_one({"_id": key}) or {}
        return self._documents[key]

    def cached(self, user_id: str, day: date) -> dict | None:
        return self._documents.get(doc_id(user_id, day))

    def set(self, user_id: str, day: date, path: tuple[str, ...], value) -> None:
        node = self.document(user_id, day)
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self._update(user_id, day)["$set"][".".join(path)] = value

    def unset(self, user_id: str, day: date, path: tuple[str, ...]) -> None:
        node = self.document(user_id, day)
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)
        self._update(user_id, day)["$unset"][".".join(path)] = ""

    def _update(self, user_id: str, day: date) -> dict[str, dict]:
        key = doc_id(user_id, day)
        if key not in self._updates:
            self._updates[key] = {
                # `um` is set on every write, so documents written before it existed get it as they change.
                "$set": {"um": month_key(user_id, day)},
                "$unset": {},
                "$setOnInsert": {"user_id": user_id, "date": day.isoformat()},
            }
        return self._updates[key]

    def flush(self) -> None:
        updates = [
            UpdateOne({"_id": key}, {op: fields for op, fields in update.items() if fields}, upsert=True)
            for key, update in sorted(self._updates.items())
        ]
        for start in range(0, len(updates), MAX_UPDATES_PER_COMMAND):
            with self._one_command:
                self._collection.bulk_write(updates[start : start + MAX_UPDATES_PER_COMMAND], ordered=False)
        self._updates.clear()


class MongoMetricStore(MetricStore):
    """MetricStore on a `metrics` collection; see the module docstring for the document shape.

    Call ensure_indexes() once at start-up (the constructor does not touch the
    network, so building the store never fails because the server is down).
    """

    def __init__(
        self,
        client_or_uri: MongoClient | str,
        database: str = "fittrack",
        read_preference: str = "primaryPreferred",
        timeout_seconds: float = 5.0,
        ferretdb_indexes: FerretDBIndexes | None = None,
    ) -> None:
        if read_preference not in READ_PREFERENCES:
            raise ValueError(f"read_preference must be one of {', '.join(READ_PREFERENCES)}, not {read_preference!r}")
        if isinstance(client_or_uri, str):
            # Short selection and socket timeouts turn an outage, or a server that stopped answering, into
            # UNAVAILABLE within a caller's deadline rather than after pymongo's 30 s (or never: no socket
            # timeout is pymongo's default).
            timeout_ms = int(timeout_seconds * 1000)
            self._client = MongoClient(
                client_or_uri,
                serverSelectionTimeoutMS=min(SERVER_SELECTION_TIMEOUT_MS, timeout_ms),
                connectTimeoutMS=min(SERVER_SELECTION_TIMEOUT_MS, timeout_ms),
                socketTimeoutMS=timeout_ms,
            )
            self._owns_client = True
        else:
            self._client = client_or_uri
            self._owns_client = False
        db = self._client[database]
        # The persister reads back what it has just written to recompute a day, so
        # its reads and writes go to the primary. Writes wait for a majority: the
        # persister commits its Kafka offset right after, and a write rolled back
        # by a fail-over would then never be replayed.
        self._primary = db.get_collection(
            COLLECTION, read_preference=Primary(), write_concern=WriteConcern(w="majority")
        )
        # Views, reports and goal checks tolerate replica lag.
        self._reader = db.get_collection(COLLECTION, read_preference=READ_PREFERENCES[read_preference])
        self._meta = db.get_collection(META_COLLECTION, read_preference=Primary())
        self._local = threading.local()
        self._one_command = threading.Lock()
        self._ferretdb_indexes = ferretdb_indexes
        # Until ensure_indexes() finds the collection in LAYOUT, ranges are read the old way (every document
        # of the user: `um` may be missing), and `fittrack-migrate` brings it up to date.
        self.by_month = False

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """The writes made inside go to the server when the block ends without an error, in small commands."""
        pending = _Pending(self._primary, self._one_command)
        self._local.pending = pending
        try:
            yield
        finally:
            self._local.pending = None
        _mapped_errors(pending.flush)()

    @contextmanager
    def _writes(self) -> Iterator[_Pending]:
        """The group in progress, or a group of this one call."""
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            yield pending
            return
        with self.grouped():
            yield self._local.pending

    @_mapped_errors
    def ensure_indexes(self) -> None:
        """Idempotent; call it at start-up, and now and then (upkeep): FerretDB re-creates a dropped table bare.

        Also learns whether every document has `um` (LAYOUT); a new, empty collection is marked so at once.
        """
        if self._is_ferretdb():
            self._ensure_ferretdb_indexes()
        else:
            self._primary.create_index([("um", ASCENDING)], name="um")
            self._primary.create_index([("user_id", ASCENDING)], name="user_id")
        if self._meta.find_one({"_id": LAYOUT["_id"]}) == LAYOUT:
            self.by_month = True
        elif self._primary.find_one({}, {"_id": 1}) is None:
            self._meta.replace_one({"_id": LAYOUT["_id"]}, LAYOUT, upsert=True)
            self.by_month = True
        else:
            log.warning(
                "the %s collection predates its month keys: views read every document of a user until "
                "`fittrack-migrate` has run",
                COLLECTION,
            )

    def _is_ferretdb(self) -> bool:
        return "ferretdbVersion" in self._client.admin.command("buildInfo")

    def _ensure_ferretdb_indexes(self) -> None:
        if self._ferretdb_indexes is None:
            log.warning(
                "the metric store is FerretDB but FITTRACK_FERRETDB_PG_DSN is not set: every query reads "
                "the whole collection (see the README's production section)"
            )
            return
        try:
            self._ferretdb_indexes.ensure()
        except psycopg2.Error as error:
            # Queries stay correct without the indexes, only slow; the persister's upkeep tries again.
            log.warning("could not index FerretDB's tables: %s", str(error).strip())

    @_mapped_errors
    def migrate_layout(self) -> int:
        """Give every document its month key, then note LAYOUT; how many documents changed.

        Run it with the persisters stopped (fittrack-migrate): FerretDB 1.x could lose a persister's write
        made to a document between this read and this write.
        """
        changed = 0
        missing = self._primary.find({"um": {"$exists": False}}, {"user_id": 1, "date": 1})
        batch: list[UpdateOne] = []
        for document in missing:
            key = month_key(document["user_id"], date.fromisoformat(document["date"]))
            batch.append(UpdateOne({"_id": document["_id"]}, {"$set": {"um": key}}))
            if len(batch) == MAX_UPDATES_PER_COMMAND:
                changed += self._primary.bulk_write(batch, ordered=False).modified_count
                batch = []
        if batch:
            changed += self._primary.bulk_write(batch, ordered=False).modified_count
        self._meta.replace_one({"_id": LAYOUT["_id"]}, LAYOUT, upsert=True)
        self.by_month = True
        return changed

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    @_mapped_errors
    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        if not readings:
            return set()
        key = escape_source(source)
        # Like the SQL upsert run reading by reading: a repeated minute keeps the
        # day it first came with, and its last value.
        wanted: dict[tuple[int, int], tuple[date, float]] = {}
        for reading in readings:
            slot = (int(reading.metric), reading.minute)
            day = wanted[slot][0] if slot in wanted else reading.local_date
            wanted[slot] = (day, float(reading.value))
        candidates = _other_days(wanted)
        # Read-modify-write is safe here only because one persister writes a user's documents (module docstring).
        # One find per document rather than one `$in` query: FerretDB 1.x pushes only equality filters down to
        # PostgreSQL and would evaluate `$in` over every document of the collection itself.
        with self._writes() as pending:
            documents = {
                day: pending.document(user_id, day)
                for day in sorted({day for day, _ in wanted.values()} | set(candidates))
            }
            placed = _placed_elsewhere(documents, candidates)
            fresh: dict[tuple[date, int], dict[int, float]] = defaultdict(dict)
            for (metric, minute), (day, value) in wanted.items():
                # A minute stays on the local day it was first placed on, even when
                # it is resent after a time-zone change put it on another day.
                fresh[(placed.get((metric, minute), day), metric)][minute] = value
            for (day, metric), values in fresh.items():
                document = documents[day]
                blob = document.get("b", {}).get(str(metric), {}).get(key)
                legacy = document.get("m", {}).get(str(metric), {}).get(key)
                if legacy:
                    earlier = {int(field[1:]): float(value) for field, value in legacy.items()}
                    earlier.update(decoded(blob) if blob else {})
                    earlier.update(values)
                    blob = encoded(earlier)
                    pending.unset(user_id, day, ("m", str(metric), key))
                else:
                    blob = merged(blob, values)
                pending.set(user_id, day, ("b", str(metric), key), blob)
        return {(MetricKind(metric), day) for day, metric in fresh}

    @_mapped_errors
    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        pending = getattr(self._local, "pending", None)
        document = pending.cached(user_id, day) if pending is not None else None
        if document is None:
            document = self._primary.find_one(
                {"_id": doc_id(user_id, day)}, {f"b.{int(metric)}": 1, f"m.{int(metric)}": 1}
            )
        by_source = _minutes_by_source(document or {}, int(metric))
        return {unescape_source(source): minutes for source, minutes in by_source.items() if minutes}

    @_mapped_errors
    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        with self._writes() as pending:
            for summary in summaries:
                figures = {
                    "value": float(summary.value),
                    "min": float(summary.min),
                    "max": float(summary.max),
                    "minutes": int(summary.minutes),
                    # A subdocument, not nested arrays: FerretDB 1.x stores no arrays of arrays.
                    "sources": {
                        escape_source(f.source): {"value": float(f.value), "minutes": int(f.minutes)}
                        for f in summary.sources
                    },
                }
                pending.set(user_id, summary.day, ("d", str(int(metric))), figures)

    @_mapped_errors
    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        field = f"d.{int(metric)}"
        if start == end:
            # The persister's daily goal check and a day view. FerretDB 1.x hands only
            # equality filters to PostgreSQL, so the range query below makes it load
            # every document of the user; by _id it loads one.
            found = self._reader.find_one(
                {"_id": doc_id(user_id, start), field: {"$exists": True}}, {"date": 1, field: 1}
            )
            documents = [found] if found else []
        elif self.by_month:
            # One indexed equality per month; the days outside [start, end] are dropped here.
            documents = [
                document
                for month in _months(start, end)
                for document in self._reader.find({"um": month_key(user_id, month)}, {"date": 1, field: 1})
                if start.isoformat() <= document["date"] <= end.isoformat() and field_in(document, metric)
            ]
            documents.sort(key=lambda document: document["date"])
        else:
            documents = self._reader.find(
                {
                    "user_id": user_id,
                    "date": {"$gte": start.isoformat(), "$lte": end.isoformat()},
                    field: {"$exists": True},
                },
                {"date": 1, field: 1},
            ).sort("date", ASCENDING)
        summaries = []
        for document in documents:
            daily = document["d"][str(int(metric))]
            summaries.append(
                DaySummary(
                    date.fromisoformat(document["date"]),
                    float(daily["value"]),
                    float(daily["min"]),
                    float(daily["max"]),
                    int(daily["minutes"]),
                    _source_figures(daily.get("sources", {})),
                )
            )
        return summaries

    @_mapped_errors
    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        fields = {"user_id": 1, "date": 1, **{f"d.{int(metric)}.value": 1 for metric in metrics}}
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        for document in self._documents_of(user_ids, start, end, fields):
            if start.isoformat() <= document["date"] <= end.isoformat():
                daily = document.get("d", {})
                for metric in metrics:
                    figures = daily.get(str(int(metric)))
                    if figures is not None:
                        found.setdefault(document["user_id"], {}).setdefault(metric, {})[
                            date.fromisoformat(document["date"])
                        ] = float(figures["value"])
        return found

    def _documents_of(self, user_ids: Sequence[str], start: date, end: date, fields: dict) -> Iterator[dict]:
        """The documents of these users in [start, end], and perhaps others of the same months."""
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        if not self.by_month:
            # The old layout: by _id, one query per chunk of users; MongoDB answers $in from the _id
            # index, FerretDB 1.x reads the whole collection for it.
            per_chunk = max(1, 2000 // len(days))
            for offset in range(0, len(user_ids), per_chunk):
                ids = [doc_id(user_id, day) for user_id in user_ids[offset : offset + per_chunk] for day in days]
                yield from self._reader.find({"_id": {"$in": ids}}, fields)
            return
        for user_id in user_ids:
            if len(days) == 1:
                # A daily goal's day: one document by _id reads less than its month.
                found = self._reader.find_one({"_id": doc_id(user_id, start)}, fields)
                if found:
                    yield found
                continue
            for month in _months(start, end):
                yield from self._reader.find({"um": month_key(user_id, month)}, fields)

    @_mapped_errors
    def delete_user(self, user_id: str) -> None:
        self._primary.delete_many({"user_id": user_id})
