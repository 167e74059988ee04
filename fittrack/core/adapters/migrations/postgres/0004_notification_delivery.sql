-- Notification delivery (core/services/dispatch.py).

-- The user's local day a notification counts towards: the daily cap on
-- behind-goal nudges counts the stored ones per (user, kind, day).
ALTER TABLE notifications ADD COLUMN local_date date;
CREATE INDEX notifications_by_day ON notifications (user_id, kind, local_date) WHERE local_date IS NOT NULL;

-- One push per stored notification, with its retries. A 'dead' one is a dead
-- letter until an operator replays it (fittrack-admin dead-letters replay).
CREATE TABLE notification_deliveries (
    notification_id text PRIMARY KEY REFERENCES notifications (notification_id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- When it may be tried next; while a dispatcher pushes it, the end of its lease.
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CONSTRAINT notification_deliveries_attempts CHECK (attempts >= 0),
    state           text NOT NULL DEFAULT 'pending'
        CONSTRAINT notification_deliveries_state CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error      text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL
);
-- Dispatchers look for due pending ones; delivered ones, the vast majority, stay out of the index.
CREATE INDEX notification_deliveries_due ON notification_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX notification_deliveries_dead ON notification_deliveries (updated_at) WHERE state = 'dead';
-- Deleting a user cascades here.
CREATE INDEX notification_deliveries_by_user ON notification_deliveries (user_id);
