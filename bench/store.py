"""bench/store: the metric store's reads as the collection grows, on the FerretDB that `make services` runs.

    python -m bench.store [--sizes 10000,100000,1000000] [--samples 300]

Grows a scratch collection to each size in turn (a year of day documents per
user, bulk-inserted in the store's layout: bench/days.py), indexed as the
store indexes it (fittrack/core/adapters/ferretdb_indexes.py), analyzed as autovacuum
would, and times at each size, for random users and days:

- find_by_id: a day, as a day view reads it (MongoMetricStore.days over one day);
- week: a user's last seven days of steps (the week view);
- month: a month of steps and calories (what a monthly report reads per metric);
- the anchor, in the same run: the raw FerretDB operation, a find_one by _id
  through pymongo with no projection and no decoding.

Target: each read's median at the largest size within 2x of the smallest
(growth); ratio_to_anchor is find_by_id's median over the raw find's at the
largest size.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta

from pymongo import MongoClient

from bench.common import emit, ms, percentile
from bench.days import DAYS_PER_USER, FIRST_DAY, load, settle, user_ids
from fittrack.core.adapters.ferretdb_indexes import FerretDBIndexes
from fittrack.core.adapters.mongo import MongoMetricStore
from fittrack.core.adapters.mongo_documents import doc_id
from fittrack.core.adapters.mongo_layout import COLLECTION, EQUALITY_FIELDS
from fittrack.core.domain.metrics import MetricKind
from tests.production import service_settings

GROWTH_TARGET = 2.0
STEPS, CALORIES = MetricKind.STEPS, MetricKind.CALORIES_BURNED


def timed(call: Callable[[], object], samples: int) -> dict[str, float]:
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        took.append(time.perf_counter() - started)
    return {"p50_ms": ms(statistics.median(took)), "p99_ms": ms(percentile(took, 0.99))}


def measure(store: MongoMetricStore, raw, users: list[str], samples: int, rng: random.Random) -> dict[str, dict]:
    def pick() -> tuple[str, date]:
        return rng.choice(users), FIRST_DAY + timedelta(days=rng.randrange(7, DAYS_PER_USER))

    def find_by_id():
        user, day = pick()
        assert len(store.days(user, STEPS, day, day)) == 1

    def raw_find_by_id():
        user, day = pick()
        assert raw.find_one({"_id": doc_id(user, day)}) is not None

    def week():
        user, day = pick()
        assert len(store.days(user, STEPS, day - timedelta(days=6), day)) == 7

    def month():
        user, day = pick()
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        for metric in (STEPS, CALORIES):
            store.days(user, metric, first, last)

    for warm_up in (find_by_id, raw_find_by_id, week, month):
        warm_up()
    return {
        "find_by_id": timed(find_by_id, samples),
        "week": timed(week, samples),
        "month": timed(month, samples),
        "raw_find_by_id": timed(raw_find_by_id, samples),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="collection sizes, ascending")
    parser.add_argument("--samples", type=int, default=300, help="timed reads of each kind at each size")
    options = parser.parse_args(argv)
    sizes = sorted(int(size) for size in options.sizes.split(","))
    figures: dict = {"bench": "store", "backend": "ferretdb", "sizes": sizes, "samples": options.samples}
    try:
        settings = service_settings()
        pg_dsn = settings["FITTRACK_FERRETDB_PG_DSN"]
    except (RuntimeError, KeyError):
        emit({**figures, "skipped": "services not running: run make services"})
        return 0
    name = f"ft_bench_store_{secrets.token_hex(3)}"
    client = MongoClient(settings["FITTRACK_MONGO_URI"], serverSelectionTimeoutMS=5000)
    indexes = FerretDBIndexes(pg_dsn, name, EQUALITY_FIELDS)
    store = MongoMetricStore(settings["FITTRACK_MONGO_URI"], name, "primary", ferretdb_indexes=indexes)
    rng = random.Random(11)
    try:
        store.ensure_indexes()
        users: list[str] = []
        at: dict[str, dict] = {}
        load_seconds = 0.0
        for size in sizes:
            wanted = user_ids(-(-size // DAYS_PER_USER))
            started = time.perf_counter()
            load(client[name][COLLECTION], wanted[len(users) :])
            settle(pg_dsn, name)
            load_seconds += time.perf_counter() - started
            users = wanted
            at[str(size)] = {
                "documents": len(users) * DAYS_PER_USER,
                **measure(store, client[name][COLLECTION], users, options.samples, rng),
            }
        smallest, largest = at[str(sizes[0])], at[str(sizes[-1])]
        growth = {
            read: round(largest[read]["p50_ms"] / smallest[read]["p50_ms"], 2)
            for read in ("find_by_id", "week", "month", "raw_find_by_id")
        }
        figures.update(
            {
                "at": at,
                "load_docs_per_s": round(largest["documents"] / load_seconds),
                "growth": growth,
                "growth_target": GROWTH_TARGET,
                "meets_target": all(growth[read] <= GROWTH_TARGET for read in ("find_by_id", "week", "month")),
                "anchor": "raw find_one by _id (pymongo, no projection)",
                "ratio_to_anchor": round(largest["find_by_id"]["p50_ms"] / largest["raw_find_by_id"]["p50_ms"], 2),
            }
        )
    except Exception as error:  # noqa: BLE001 - the JSON line says what went wrong
        emit({**figures, "error": f"{type(error).__name__}: {error}"})
        return 1
    finally:
        store.close()
        client.drop_database(name)
        client.close()
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
