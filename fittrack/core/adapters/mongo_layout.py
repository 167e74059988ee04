"""The metric store's collections, the layout of their documents, and its upkeep: indexes and migration.

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

A source's minutes are one binary value in the layout of fittrack/core/adapters/minute_blob.py:
FerretDB 1.x converts every field of a document on each read and write, so a
day held as 1,440 fields cost about 10 ms to read and 15 ms to update, and as
one value under 2 ms. Source names are escaped because device ids may hold
'.', '$', '%' or spaces, which would split or break a field path.

Earlier releases wrote a field per minute under "m"
(`"m": {"<metric>": {"<escaped source>": {"t<minute>": value}}}`), and kept
the minutes and `m` in the metrics document, without `um`: the store
(fittrack/core/adapters/mongo.py) uses such a collection as it is (minutes in
the day document, ranges read the old way) until `fittrack-migrate` moves it
to this layout (CollectionLayout.migrate, noted in `fittrack_meta` as LAYOUT).

The store queries each collection by equality on EQUALITY_FIELDS only. On
MongoDB they get ordinary indexes; FerretDB 1.x reaches an index only through
those fittrack/core/adapters/ferretdb_indexes.py adds under its tables.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import date

import psycopg2
from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from pymongo.read_preferences import Primary

from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
from fittrack.core.adapters.mongo_documents import MAX_UPDATES_PER_COMMAND, month_key

COLLECTION = "metrics"
MINUTES_COLLECTION = "minutes"
# Where the store notes the layout of its collections: version 2 is the one in the module docstring.
META_COLLECTION = "fittrack_meta"
LAYOUT = {"_id": "metrics_layout", "version": 2}
# The fields each collection is queried by, by equality (see the module docstring).
EQUALITY_FIELDS = {COLLECTION: ("_id", "um", "user_id"), MINUTES_COLLECTION: ("_id", "user_id")}

log = logging.getLogger(__name__)


class CollectionLayout:
    """The upkeep of a store's two collections: given the handles the store writes through (to the primary)."""

    def __init__(self, days: Collection, minutes: Collection, ferretdb_indexes: FerretDBIndexes | None) -> None:
        self._days = days
        self._minutes = minutes
        self._meta = days.database.get_collection(META_COLLECTION, read_preference=Primary())
        self._ferretdb_indexes = ferretdb_indexes

    def ensure_indexes(self) -> bool:
        """Idempotent; whether the collections are in LAYOUT. New, empty ones are noted so at once."""
        if self._is_ferretdb():
            self._ensure_ferretdb_indexes()
        else:
            for collection, fields in EQUALITY_FIELDS.items():
                for field in fields:
                    if field != "_id":
                        self._days.database[collection].create_index([(field, ASCENDING)], name=field)
        if self._meta.find_one({"_id": LAYOUT["_id"]}) == LAYOUT:
            return True
        if self._days.find_one({}, {"_id": 1}) is None:
            self._note_layout()
            return True
        log.warning(
            "the %s collection is in an earlier release's layout: views read every document of a user, "
            "and the day documents hold the minutes, until `fittrack-migrate` has run",
            COLLECTION,
        )
        return False

    def _is_ferretdb(self) -> bool:
        return "ferretdbVersion" in self._days.database.client.admin.command("buildInfo")

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

    def migrate(self) -> int:
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
            self._minutes.bulk_write(copies, ordered=False)
        return self._days.bulk_write([day for day, _ in moves], ordered=False).modified_count
