-- Notification preferences: per goal, and per user with quiet hours in local time ("HH:MM").

ALTER TABLE goals ADD COLUMN notify INTEGER NOT NULL DEFAULT 1 CHECK (notify IN (0, 1));
-- The evaluator walks the users of one time zone at a time, in id order.
CREATE INDEX users_by_zone ON users (time_zone, user_id);
CREATE TABLE notification_preferences (
    user_id     TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    quiet_start TEXT,
    quiet_end   TEXT,
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
