"""The embedded profile's notification outbox: the stand-in for the `notifications` topic."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fittrack.core.adapters.codec import decode_notification, encode_notification
from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.domain.notifications import Notification
from fittrack.core.ports import (
    NotificationQueue,
)


class SqliteNotificationQueue(NotificationQueue):
    """The embedded stand-in for the `notifications` topic: an outbox table in the SQLite file.

    What is sent is committed before send returns, so a crash loses nothing
    queued; the in-process dispatcher drains it in order and deletes what it
    handled (its offset commit). `on_sent` wakes the dispatcher.
    """

    def __init__(self, db: SqliteDatabase, on_sent: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self.on_sent = on_sent

    def send(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO notification_outbox (payload) VALUES (?)",
                [(encode_notification(n),) for n in notifications],
            )
        self.on_sent()

    def pending(self, limit: int) -> list[tuple[int, Notification]]:
        """The oldest notifications not handled yet, with their outbox ids."""
        rows = self._db.connection().execute(
            "SELECT id, payload FROM notification_outbox ORDER BY id LIMIT ?", (limit,)
        )
        return [(outbox_id, decode_notification(payload)) for outbox_id, payload in rows]

    def acknowledge(self, up_to_id: int) -> None:
        """The dispatcher's offset commit: everything up to this id is handled."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM notification_outbox WHERE id <= ?", (up_to_id,))
