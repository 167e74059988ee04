"""The embedded ingest log: what the in-process persister reads back, before and after a restart."""

from datetime import date

from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_ingest import SqliteReadingBus
from fittrack.core.domain.metrics import AcceptedBatch, MetricKind, PlacedReading


def batch(user_id: str, sequence: int) -> AcceptedBatch:
    reading = PlacedReading(MetricKind.STEPS, 100 + sequence, 7.0, date(2026, 1, 2))
    return AcceptedBatch(user_id, "watch", sequence, (reading,))


def test_the_persister_reads_every_batch_in_order_and_a_restarted_server_still_finds_the_unapplied_ones(tmp_path):
    db = SqliteDatabase(tmp_path / "log.sqlite3")
    db.migrate()
    bus = SqliteReadingBus(db)
    sent = [batch(f"u{n % 3}", n // 3 + 1) for n in range(30)]
    futures = [bus.submit([b]) for b in sent]
    assert all(f.result(timeout=10) == ["accepted"] for f in futures)
    first = bus.pending(10)
    assert [b for _, b in first] == sent[:10]
    bus.acknowledge(first[-1][0])
    bus.close()
    db.close()

    reopened = SqliteDatabase(tmp_path / "log.sqlite3")
    after_restart = SqliteReadingBus(reopened).pending(100)
    assert [b for _, b in after_restart] == sent[10:]
    assert [log_id for log_id, _ in after_restart] == sorted(log_id for log_id, _ in after_restart)
    reopened.close()
