"""The production profile's metric store: MongoDB (FerretDB 1.x in our deployment).

One document per user per local day in each of two collections, keyed alike
(`_id` is `<user_id>:<YYYY-MM-DD>`):

    metrics  (the daily figures: what views, reports and goal checks read)
    {"_id", "user_id", "date": "YYYY-MM-DD", "um": "<user_id>:<YYYY-MM>",
     "d": {"<metric>": {"value": .., "min": .., "max": .., "minutes": ..,
                        "sources": {"<escaped source>": {"value": .., "minutes": ..}, ...}}, ...}}

    minutes  (each source's minutes: what the persister reads and rewrites)
    {"_id", "user_id", "date",
     "b": {"<metric>": {"<escaped source>": <binary: the source's minutes of the day>, ...}, ...}}

Why two: FerretDB 1.x decodes a whole document for every read, whatever the
projection, and a wearable's day of minutes is tens of kilobytes. With the
minutes in the day document, a week view cost 63 ms; without, 7 ms.

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

A source's minutes are one binary value in the layout of fittrack/core/adapters/minute_blob.py:
FerretDB 1.x converts every field of a document on each read and write, so a
day held as 1,440 fields cost about 10 ms to read and 15 ms to update, and as
one value under 2 ms. Earlier releases wrote a field per minute under "m"
(`"m": {"<metric>": {"<escaped source>": {"t<minute>": value}}}`), and kept
the minutes and `m` in the metrics document, without `um`: such a collection
is used as it is (minutes in the day document, ranges read the old way) until
`fittrack-migrate` moves it to this layout (migrate_layout, noted in
`fittrack_meta` as LAYOUT). Source names are escaped because device ids may
hold '.', '$', '%' or spaces, which would split or break a field path.

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

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import wraps
from typing import TypeVar

import psycopg2
from pymongo import ASCENDING, MongoClient, UpdateOne
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)
from pymongo.read_preferences import Nearest, Primary, PrimaryPreferred, Secondary, SecondaryPreferred
from pymongo.write_concern import WriteConcern

from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
from fittrack.core.adapters.ferretdb_reads import FerretDBReads
from fittrack.core.adapters.minute_blob import decoded, encoded, merged
from fittrack.core.adapters.mongo_documents import (
    MAX_UPDATES_PER_COMMAND,
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
from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.errors import Unavailable
from fittrack.core.domain.metrics import MetricKind, PlacedReading
from fittrack.core.domain.placement import Write, place_minutes
from fittrack.core.ports import MetricStore

COLLECTION = "metrics"
MINUTES_COLLECTION = "minutes"
# Where the store notes the layout of its collections: version 2 is the one in the module docstring.
META_COLLECTION = "fittrack_meta"
LAYOUT = {"_id": "metrics_layout", "version": 2}
# The fields each collection is queried by, by equality (see the module docstring).
EQUALITY_FIELDS = {COLLECTION: ("_id", "um", "user_id"), MINUTES_COLLECTION: ("_id", "user_id")}
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
    """MetricStore on the `metrics` and `minutes` collections; see the module docstring for their shape.

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
        majority = WriteConcern(w="majority")
        self._days = db.get_collection(COLLECTION, read_preference=Primary(), write_concern=majority)
        self._minutes_of_layout = db.get_collection(
            MINUTES_COLLECTION, read_preference=Primary(), write_concern=majority
        )
        # Views, reports and goal checks tolerate replica lag.
        self._reader = db.get_collection(COLLECTION, read_preference=READ_PREFERENCES[read_preference])
        self._meta = db.get_collection(META_COLLECTION, read_preference=Primary())
        self._local = threading.local()
        self._one_command = threading.Lock()
        self._ferretdb_indexes = ferretdb_indexes
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
        if self._is_ferretdb():
            self._ensure_ferretdb_indexes()
        else:
            for collection, fields in EQUALITY_FIELDS.items():
                for field in fields:
                    if field != "_id":
                        self._days.database[collection].create_index([(field, ASCENDING)], name=field)
        if self._meta.find_one({"_id": LAYOUT["_id"]}) == LAYOUT:
            self.migrated = True
        elif self._days.find_one({}, {"_id": 1}) is None:
            self._note_layout()
            self.migrated = True
        else:
            log.warning(
                "the %s collection is in an earlier release's layout: views read every document of a user, "
                "and the day documents hold the minutes, until `fittrack-migrate` has run",
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
        """Bring an earlier release's collection to LAYOUT, then note it; how many day documents changed.

        Each day document gets its month key, and its minutes move to their own
        collection. Run it with the persisters stopped (fittrack-migrate): FerretDB
        1.x could lose a persister's write made to a document between this read
        and this write.
        """
        changed = 0
        moves: list[tuple[UpdateOne, UpdateOne | None]] = []
        for document in self._days.find({"um": {"$exists": False}}):
            key = month_key(document["user_id"], date.fromisoformat(document["date"]))
            minutes = {field: document[field] for field in ("b", "m") if field in document}
            day = {"$set": {"um": key}}
            move = None
            if minutes:
                day["$unset"] = dict.fromkeys(minutes, "")
                move = UpdateOne(
                    {"_id": document["_id"]},
                    {"$set": {"user_id": document["user_id"], "date": document["date"], **minutes}},
                    upsert=True,
                )
            moves.append((UpdateOne({"_id": document["_id"]}, day), move))
            if len(moves) == MAX_UPDATES_PER_COMMAND:
                changed += self._move(moves)
                moves = []
        if moves:
            changed += self._move(moves)
        self._note_layout()
        self.migrated = True
        return changed

    def _note_layout(self) -> None:
        # Two processes starting on a new database upsert at once; one insert loses (FerretDB does not
        # retry it as MongoDB does), and the winner wrote the same LAYOUT.
        with contextlib.suppress(DuplicateKeyError):
            self._meta.replace_one({"_id": LAYOUT["_id"]}, LAYOUT, upsert=True)

    def _move(self, moves: list[tuple[UpdateOne, UpdateOne | None]]) -> int:
        # The minutes are copied before they are taken out of the day documents: a crash in between leaves both.
        copies = [move for _, move in moves if move is not None]
        if copies:
            self._minutes_of_layout.bulk_write(copies, ordered=False)
        return self._days.bulk_write([day for day, _ in moves], ordered=False).modified_count

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
