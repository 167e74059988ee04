-- Notification delivery: the outbox the in-process dispatcher drains, each notification's
-- local day (the daily nudge cap counts by it), and pushes with their retries; a push in
-- state 'dead' is a dead letter. due_at is Unix seconds, so that it sorts and compares as a number.

ALTER TABLE notifications ADD COLUMN local_date TEXT;
CREATE INDEX notifications_by_day ON notifications (user_id, kind, local_date);
CREATE TABLE notification_outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL
);
CREATE TABLE notification_deliveries (
    notification_id TEXT PRIMARY KEY REFERENCES notifications (notification_id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    due_at          REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error      TEXT NOT NULL DEFAULT '',
    updated_at      TEXT NOT NULL
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, due_at);
CREATE INDEX notification_deliveries_by_user ON notification_deliveries (user_id);
