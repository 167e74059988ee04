"""bench/evaluate: one evaluation slot for many users with goals, on either profile.

    python -m bench.evaluate [--users 100000] [--profile embedded|production]

Seeds a fresh SQLite database with USERS users spread over four time zones
that are all at 16:00 at the same moment, each with a daily steps goal and
every other one also a weekly calories goal, and a week of daily values for
most of them; then times GoalEvaluator.run_due over the minute holding that
16:00 slot: the page queries, the pace rule, and queueing the nudges into
the durable notification outbox. The target is 100,000 users in at most 10 s.

The anchor, measured in the same run on the same file: reading the same goals,
preferences and daily values with plain SQL and no evaluation. The ratio says
how much the evaluator costs over the reads it cannot avoid.

--profile production does the same on a slice of the running services
(tests/production.py): users and goals in PostgreSQL, a week of day documents
in FerretDB (bulk-inserted in the store's layout and indexed as the store
indexes them), nudges to the slice's Kafka topic; the anchor reads the goals,
preferences and daily values in plain SQL from PostgreSQL and FerretDB's table.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time as clock
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import emit
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_accounts import SqliteUnitOfWork
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
from fittrack.core.services.evaluation import EvaluationSettings, GoalEvaluator, WorkClaims

TARGET_SECONDS = 10.0
# At 15:00 UTC on a winter Wednesday it is 16:00 in all four.
ZONES = ("Europe/Paris", "Europe/Berlin", "Africa/Lagos", "Europe/Rome")
SLOT_MOMENT = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
TODAY = date(2026, 11, 18)


def seed(path: Path, users: int, rng: random.Random) -> int:
    """Users, goals and daily values written straight into the schema; returns the number of goals."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    created = "2026-01-01T00:00:00+00:00"
    ids = [f"{n:032x}" for n in range(1, users + 1)]
    conn.executemany(
        "INSERT INTO users (user_id, username, time_zone, created_at) VALUES (?, ?, ?, ?)",
        ((user_id, f"bench{n}", ZONES[n % len(ZONES)], created) for n, user_id in enumerate(ids)),
    )
    goals = [(f"s{user_id[1:]}", user_id, 1, 1, 10_000.0) for user_id in ids]
    goals += [(f"c{user_id[1:]}", user_id, 2, 2, 14_000.0) for user_id in ids[::2]]
    conn.executemany(
        "INSERT INTO goals (goal_id, user_id, metric, period, target, active, created_at, updated_at, notify)"
        " VALUES (?, ?, ?, ?, ?, 1, ?, ?, 1)",
        ((*goal, created, created) for goal in goals),
    )
    monday = TODAY - timedelta(days=TODAY.weekday())
    days = [monday + timedelta(days=n) for n in range((TODAY - monday).days + 1)]

    def values():
        for user_id in ids:
            if rng.random() < 0.2:
                continue  # no readings this week
            for day in days:
                yield user_id, 1, day.toordinal(), float(rng.randint(0, 12_000))
                yield user_id, 2, day.toordinal(), float(rng.randint(0, 2_600))

    conn.executemany(
        "INSERT INTO daily_values (user_id, metric, local_date, value, min, max, minutes) VALUES (?, ?, ?, ?, 0, 0, 1)",
        values(),
    )
    conn.execute("COMMIT")
    conn.close()
    return len(goals)


def anchor(path: Path) -> float:
    """The reads alone: every goal of the four zones, their preferences and their week of daily values."""
    conn = sqlite3.connect(path)
    started = clock.perf_counter()
    for zone in ZONES:
        owners = [
            row[1]
            for row in conn.execute(
                "SELECT g.goal_id, g.user_id, g.metric, g.period, g.target FROM goals g"
                " JOIN users u ON u.user_id = g.user_id WHERE u.time_zone = ? AND g.active = 1 AND g.notify = 1"
                " ORDER BY g.user_id",
                (zone,),
            )
        ]
        ids = sorted(set(owners))
        for offset in range(0, len(ids), 500):
            chunk = ids[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"SELECT * FROM notification_preferences WHERE user_id IN ({marks})", chunk).fetchall()
            conn.execute(
                f"SELECT user_id, metric, local_date, value FROM daily_values WHERE user_id IN ({marks})"
                " AND metric IN (1, 2) AND local_date BETWEEN ? AND ?",
                (*chunk, (TODAY - timedelta(days=TODAY.weekday())).toordinal(), TODAY.toordinal()),
            ).fetchall()
    elapsed = clock.perf_counter() - started
    conn.close()
    return elapsed


class CountingQueue:
    """Stands in for the outbox when --no-outbox asks to time the evaluation alone."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, notifications) -> None:
        self.count += len(notifications)


def notification_queue(db: SqliteDatabase, outbox: bool):
    if not outbox:
        return CountingQueue()
    from fittrack.core.adapters.sqlite_outbox import SqliteNotificationQueue

    return SqliteNotificationQueue(db)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-outbox", action="store_true", help="count the nudges instead of queueing them")
    parser.add_argument("--profile", choices=("embedded", "production"), default="embedded")
    options = parser.parse_args(argv)
    if options.profile == "production":
        from bench.evaluate_production import run_production

        return run_production(options)
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as directory:
        path = Path(directory) / "fittrack.sqlite3"
        db = SqliteDatabase(path)
        db.migrate()
        goals = seed(path, options.users, random.Random(options.seed))
        anchor_seconds = anchor(path)
        queue = notification_queue(db, not options.no_outbox)
        summary, seconds = time_slot(
            lambda: SqliteUnitOfWork(db, read_only=True), lambda: SqliteUnitOfWork(db), SqliteMetricStore(db), queue
        )
        db.close()
    queue_name = "counting" if options.no_outbox else "sqlite outbox"
    emit(
        {
            "bench": "evaluate",
            "profile": "embedded",
            **slot_figures(summary, goals, queue_name, seconds, anchor_seconds),
        }
    )
    return 0 if summary.users == options.users else 1


def time_slot(read_uow, write_uow, store, queue):
    """The 16:00 slot evaluated once, as the server and fittrack-evaluator run it (each zone's slot claimed, then
    finished); its summary and how long it took."""
    evaluator = GoalEvaluator(
        read_uow,
        store,
        queue,
        lambda: SLOT_MOMENT,
        EvaluationSettings(report_ready_at=None),
        WorkClaims(write_uow, lambda: SLOT_MOMENT),
    )
    started = clock.perf_counter()
    summary = evaluator.run_due(SLOT_MOMENT - timedelta(minutes=1), SLOT_MOMENT)
    return summary, clock.perf_counter() - started


def slot_figures(summary, seeded_goals: int, queue: str, seconds: float, anchor_seconds: float) -> dict:
    """What both profiles print of one timed slot, against its plain-SQL anchor."""
    return {
        "users": summary.users,
        "goals": summary.goals,
        "seeded_goals": seeded_goals,
        "notifications": summary.notifications,
        "queue": queue,
        "seconds": round(seconds, 3),
        "users_per_second": round(summary.users / seconds) if seconds else None,
        "target_seconds": TARGET_SECONDS if summary.users == 100_000 else None,
        "meets_target": seconds <= TARGET_SECONDS * summary.users / 100_000,
        "anchor": {"name": "the same reads in plain SQL", "seconds": round(anchor_seconds, 3)},
        "ratio_to_anchor": round(seconds / anchor_seconds, 2) if anchor_seconds else None,
    }


if __name__ == "__main__":
    import asyncio

    sys.exit(asyncio.run(main()))
