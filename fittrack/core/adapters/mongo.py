"""The production profile's metric store: MongoDB (FerretDB 1.x in our deployment).

Its two collections, the shape of their documents and their upkeep (indexes,
the move from an earlier release's layout) are described in
fittrack/core/adapters/mongo_layout.py; a document's keys and fields are made
and read in fittrack/core/adapters/mongo_documents.py.

Every query is an equality on one indexed field: `_id` for a day, `um` (the
user and the month) for a range of days, a month at a time, `user_id` to
delete a user. FerretDB 1.x hands only top-level equalities to PostgreSQL
(`$in` and `$gte`/`$lte` it applies itself, after reading every row the
equalities left), and those only reach an index that
fittrack/core/adapters/ferretdb_indexes.py adds under its tables; on MongoDB the same
fields have ordinary indexes. On FerretDB, given its PostgreSQL, the reads of
daily figures (days, daily_totals) go to its tables in SQL instead
(fittrack/core/adapters/ferretdb_reads.py), falling back to these queries on any error.

Writes go to FerretDB in commands of at most MAX_UPDATES_PER_COMMAND updates,
one command at a time per process: FerretDB 1.24 holds a pooled PostgreSQL
connection for every update of a command until the whole command returns
(internal/handler/msg_update.go), so a command with as many updates as its
pool has connections (`pool_max_conns`, 50 by default), or several commands
adding up to that, wait for each other for ever.

Only the update operators FerretDB 1.x implements are used ($set, $unset,
$setOnInsert, upsert, unordered bulk_write). Minute values and daily figures
are replaced, never incremented, so a batch applied again leaves the same
documents.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import wraps
from typing import TypeVar

import psycopg2
from pymongo import MongoClient
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)
from pymongo.read_preferences import Nearest, Primary, PrimaryPreferred, Secondary, SecondaryPreferred
from pymongo.write_concern import WriteConcern

from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
from fittrack.core.adapters.ferretdb_reads import FerretDBReads
from fittrack.core.adapters.minute_blob import decoded, encoded, merged
from fittrack.core.adapters.mongo_documents import (
    Pending,
    day_summary,
    doc_id,
    escape_source,
    field_in,
    held_minutes,
    minutes_by_source,
    month_key,
    months,
    unescape_source,
)
from fittrack.core.adapters.mongo_layout import COLLECTION, MINUTES_COLLECTION, CollectionLayout
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import MetricKind, PlacedReading
from fittrack.core.domain.placement import Write, place_minutes
from fittrack.core.ports import MetricStore

SERVER_SELECTION_TIMEOUT_MS = 3000

READ_PREFERENCES = {
    "primary": Primary(),
    "primaryPreferred": PrimaryPreferred(),
    "secondary": Secondary(),
    "secondaryPreferred": SecondaryPreferred(),
    "nearest": Nearest(),
}

_CONNECTION_ERRORS = (ServerSelectionTimeoutError, AutoReconnect, ConnectionFailure, NetworkTimeout)

T = TypeVar("T")

log = logging.getLogger(__name__)


def _mapped_errors(method: Callable[..., T]) -> Callable[..., T]:
    @wraps(method)
    def wrapper(*args, **kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except _CONNECTION_ERRORS as error:
            raise Unavailable("the metric store is unavailable; try again") from error

    return wrapper


@dataclass
class _Group:
    """The writes of one group, per collection; the minutes go first."""

    minutes: Pending
    days: Pending

    def flush(self) -> None:
        self.minutes.flush()
        self.days.flush()


class MongoMetricStore(MetricStore):
    """MetricStore on the `metrics` and `minutes` collections; mongo_layout.py describes their shape.

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
        ferretdb_reads: FerretDBReads | None = None,
        event_listeners: Sequence = (),
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
                # The metrics' pool gauge (fittrack/core/adapters/instruments.py), when they are on.
                event_listeners=list(event_listeners),
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
        majority = WriteConcern(w="majority")
        self._days = db.get_collection(COLLECTION, read_preference=Primary(), write_concern=majority)
        self._minutes_of_layout = db.get_collection(
            MINUTES_COLLECTION, read_preference=Primary(), write_concern=majority
        )
        # Views, reports and goal checks tolerate replica lag.
        self._reader = db.get_collection(COLLECTION, read_preference=READ_PREFERENCES[read_preference])
        self._local = threading.local()
        self._one_command = threading.Lock()
        self._layout = CollectionLayout(self._days, self._minutes_of_layout, ferretdb_indexes)
        self._ferretdb_reads = ferretdb_reads
        # Until ensure_indexes() finds LAYOUT noted, the collection is used as earlier releases left it.
        self.migrated = False

    @property
    def _minutes(self):
        """Where the minutes are: their own collection, or the day documents of a collection not yet migrated."""
        return self._minutes_of_layout if self.migrated else self._days

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """The writes made inside go to the server when the block ends without an error, in small commands."""
        group = _Group(
            Pending(self._minutes, self._one_command, month_keys=not self.migrated),
            Pending(self._days, self._one_command, month_keys=True),
        )
        self._local.group = group
        try:
            yield
        finally:
            self._local.group = None
        _mapped_errors(group.flush)()

    @contextmanager
    def _writes(self) -> Iterator[_Group]:
        """The group in progress, or a group of this one call."""
        group = getattr(self._local, "group", None)
        if group is not None:
            yield group
            return
        with self.grouped():
            yield self._local.group

    @_mapped_errors
    def ensure_indexes(self) -> None:
        """Idempotent; call it at start-up, and now and then (upkeep): FerretDB re-creates a dropped table bare.

        Also learns whether the collections are in LAYOUT; new, empty ones are noted so at once.
        """
        if self._layout.ensure_indexes():
            self.migrated = True

    @_mapped_errors
    def migrate_layout(self) -> int:
        """Bring an earlier release's collection to LAYOUT (mongo_layout.py); how many day documents changed.

        Run it with the persisters stopped, as fittrack-migrate does.
        """
        changed = self._layout.migrate()
        self.migrated = True
        return changed

    def close(self) -> None:
        if self._ferretdb_reads is not None:
            self._ferretdb_reads.close()
        if self._owns_client:
            self._client.close()

    @_mapped_errors
    def upsert_minutes(
        self, user_id: str, source: str, readings: Sequence[PlacedReading]
    ) -> set[tuple[MetricKind, date]]:
        if not readings:
            return set()
        key = escape_source(source)
        write = Write.of(readings)
        # Read-modify-write is safe here only because one persister writes a user's documents (module docstring).
        # One find per document rather than one `$in` query: FerretDB 1.x pushes only equality filters down to
        # PostgreSQL and would evaluate `$in` over every document of the collection itself.
        with self._writes() as group:
            pending = group.minutes
            days = sorted(set().union(*(lookup.days for lookup in write.lookups.values())))
            documents = {day: pending.document(user_id, day) for day in days}
            placed = place_minutes(write, held_minutes(documents, write.lookups))
            for (metric, day), values in placed.items():
                field = str(int(metric))
                document = documents[day]
                blob = document.get("b", {}).get(field, {}).get(key)
                legacy = document.get("m", {}).get(field, {}).get(key)
                if legacy:
                    earlier = {int(name[1:]): float(value) for name, value in legacy.items()}
                    earlier.update(decoded(blob) if blob else {})
                    earlier.update(values)
                    blob = encoded(earlier)
                    pending.unset(user_id, day, ("m", field, key))
                else:
                    blob = merged(blob, values)
                pending.set(user_id, day, ("b", field, key), blob)
        return set(placed)

    @_mapped_errors
    def minutes_of_day(self, user_id: str, metric: MetricKind, day: date) -> dict[str, dict[int, float]]:
        group = getattr(self._local, "group", None)
        document = group.minutes.cached(user_id, day) if group is not None else None
        if document is None:
            document = self._minutes.find_one(
                {"_id": doc_id(user_id, day)}, {f"b.{int(metric)}": 1, f"m.{int(metric)}": 1}
            )
        by_source = minutes_by_source(document or {}, int(metric))
        return {unescape_source(source): minutes for source, minutes in by_source.items() if minutes}

    @_mapped_errors
    def save_days(self, user_id: str, metric: MetricKind, summaries: Sequence[DaySummary]) -> None:
        with self._writes() as group:
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
                group.days.set(user_id, summary.day, ("d", str(int(metric))), figures)

    def _read_in_sql(self, what: str, read: Callable[[FerretDBReads], T]) -> T | None:
        """The read straight from FerretDB's tables where it can be made; None to read through FerretDB instead."""
        if not self.migrated or self._ferretdb_reads is None:
            return None
        try:
            return read(self._ferretdb_reads)
        except psycopg2.Error as error:
            log.warning("reading %s from FerretDB's tables failed, reading through FerretDB: %s", what, error)
            return None

    @_mapped_errors
    def days(self, user_id: str, metric: MetricKind, start: date, end: date) -> list[DaySummary]:
        if (found := self._read_in_sql("days", lambda reads: reads.days(user_id, metric, start, end))) is not None:
            return found
        field = f"d.{int(metric)}"
        documents = [
            document
            for document in self._documents_of([user_id], start, end, {"date": 1, field: 1})
            if start.isoformat() <= document["date"] <= end.isoformat() and field_in(document, metric)
        ]
        documents.sort(key=lambda document: document["date"])
        return [
            day_summary(date.fromisoformat(document["date"]), document["d"][str(int(metric))]) for document in documents
        ]

    @_mapped_errors
    def daily_totals(
        self, user_ids: Sequence[str], metrics: Sequence[MetricKind], start: date, end: date
    ) -> dict[str, dict[MetricKind, dict[date, float]]]:
        found = self._read_in_sql("daily values", lambda reads: reads.daily_totals(user_ids, metrics, start, end))
        if found is not None:
            return found
        fields = {"user_id": 1, "date": 1, **{f"d.{int(metric)}.value": 1 for metric in metrics}}
        found: dict[str, dict[MetricKind, dict[date, float]]] = {}
        for document in self._documents_of(user_ids, start, end, fields):
            if not start.isoformat() <= document["date"] <= end.isoformat():
                continue
            daily = document.get("d", {})
            for metric in metrics:
                figures = daily.get(str(int(metric)))
                if figures is not None:
                    found.setdefault(document["user_id"], {}).setdefault(metric, {})[
                        date.fromisoformat(document["date"])
                    ] = float(figures["value"])
        return found

    def _documents_of(self, user_ids: Sequence[str], start: date, end: date, fields: dict) -> Iterator[dict]:
        """The day documents of these users in [start, end], and perhaps others of the same months."""
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        if not self.migrated:
            # An earlier release's collection, where `um` may be missing: by _id, one query per chunk of
            # users. MongoDB answers $in from the _id index; FerretDB 1.x reads the whole collection for it.
            per_chunk = max(1, 2000 // len(days))
            for offset in range(0, len(user_ids), per_chunk):
                ids = [doc_id(user_id, day) for user_id in user_ids[offset : offset + per_chunk] for day in days]
                yield from self._reader.find({"_id": {"$in": ids}}, fields)
            return
        for user_id in user_ids:
            if len(days) == 1:
                # A day view or a daily goal's day: one document by _id reads less than its month.
                found = self._reader.find_one({"_id": doc_id(user_id, start)}, fields)
                if found:
                    yield found
                continue
            for month in months(start, end):
                yield from self._reader.find({"um": month_key(user_id, month)}, fields)

    @_mapped_errors
    def delete_user(self, user_id: str) -> None:
        self._days.delete_many({"user_id": user_id})
        if self.migrated:
            self._minutes_of_layout.delete_many({"user_id": user_id})
