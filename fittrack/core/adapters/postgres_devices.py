"""What the production profile keeps per device in PostgreSQL: the servers' cursors and the persisters' claims.

Both are written on the primary and read there too: a lagging replica would
show an old cursor or miss a claim, and let a copy of a batch pass as new.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fittrack.core.adapters.postgres import PostgresDatabase
from fittrack.core.adapters.postgres_pool import Transaction
from fittrack.core.domain.sequences import BatchKey, DeviceCursor, LogPosition
from fittrack.core.ports import BatchClaims


class PostgresDeviceCursors:
    """Which batch sequences are held per (user, device source), on the primary.

    Reads go to the primary too: a lagging replica would show an old cursor and
    let a resent batch pass as new.
    """

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def load(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], DeviceCursor]:
        """The stored cursors of these (user, source) pairs; absent pairs hold nothing yet."""
        if not keys:
            return {}
        with self._db.transaction() as tx:
            return _stored_cursors(tx, keys)

    def save(self, cursors: dict[tuple[str, str], DeviceCursor]) -> None:
        """Store the cursors, merged with what another server may have stored meanwhile.

        A deleted user's cursors are not brought back.
        """
        if not cursors:
            return
        with self._db.transaction() as tx:
            stored = _stored_cursors(tx, list(cursors), lock=True)
            merged = {key: cursor.merged(stored[key]) if key in stored else cursor for key, cursor in cursors.items()}
            tx.execute(
                "INSERT INTO device_cursors (user_id, source, last_sequence, held)"
                " SELECT k.user_id, k.source, k.highest, k.held"
                " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) AS k (user_id, source, highest, held)"
                " WHERE EXISTS (SELECT 1 FROM users WHERE users.user_id = k.user_id)"
                " ON CONFLICT (user_id, source) DO UPDATE"
                " SET last_sequence = excluded.last_sequence, held = excluded.held",
                (
                    [u for u, _ in merged],
                    [s for _, s in merged],
                    [c.highest for c in merged.values()],
                    [c.held for c in merged.values()],
                ),
            )

    def delete_user(self, user_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM device_cursors WHERE user_id = %s", (user_id,))


def _stored_cursors(tx: Transaction, keys: Sequence[tuple[str, str]], lock: bool = False):
    """The stored cursors of these (user, source) pairs; `lock` holds their rows until the transaction ends."""
    rows = tx.execute(
        "SELECT c.user_id, c.source, c.last_sequence, c.held FROM device_cursors c"
        " JOIN unnest(%s::text[], %s::text[]) AS k (user_id, source)"
        " ON c.user_id = k.user_id AND c.source = k.source" + (" FOR UPDATE OF c" if lock else ""),
        ([user_id for user_id, _ in keys], [source for _, source in keys]),
    ).fetchall()
    return {(user_id, source): DeviceCursor(highest, held) for user_id, source, highest, held in rows}


class PostgresBatchClaims(BatchClaims):
    """The first log position of each numbered batch, one row per (user, source, sequence)."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def claim(self, firsts: dict[BatchKey, LogPosition], now: datetime) -> dict[BatchKey, LogPosition]:
        if not firsts:
            return {}
        # Sorted, so two persisters briefly sharing a partition during a rebalance lock rows in one order.
        keys = sorted(firsts)
        with self._db.transaction() as tx:
            # The outer SELECT reads the snapshot from before the INSERT: claims recorded earlier, plus what
            # this statement inserted (RETURNING). A key in neither is being claimed by another transaction.
            rows = tx.execute(
                "WITH k AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::integer[], %s::bigint[])"
                "  AS k (user_id, source, sequence, kafka_partition, kafka_offset)),"
                " inserted AS ("
                "  INSERT INTO batch_claims (user_id, source, sequence, kafka_partition, kafka_offset, claimed_at)"
                "  SELECT k.*, %s FROM k WHERE EXISTS (SELECT 1 FROM users WHERE users.user_id = k.user_id)"
                "  ON CONFLICT (user_id, source, sequence) DO NOTHING"
                "  RETURNING user_id, source, sequence, kafka_partition, kafka_offset)"
                " SELECT * FROM inserted"
                " UNION ALL"
                " SELECT c.user_id, c.source, c.sequence, c.kafka_partition, c.kafka_offset"
                " FROM batch_claims c JOIN k USING (user_id, source, sequence)",
                (
                    [user_id for user_id, _, _ in keys],
                    [source for _, source, _ in keys],
                    [sequence for _, _, sequence in keys],
                    [firsts[key].partition for key in keys],
                    [firsts[key].offset for key in keys],
                    now,
                ),
            ).fetchall()
        return {
            (user_id, source, sequence): LogPosition(part, offset) for user_id, source, sequence, part, offset in rows
        }

    def forget_before(self, moment: datetime) -> int:
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM batch_claims WHERE claimed_at < %s", (moment,)).rowcount
