-- Notification preferences: per goal, and per user with quiet hours in local time.
ALTER TABLE goals ADD COLUMN notify boolean NOT NULL DEFAULT true;

-- The evaluator walks the users of one time zone at a time, in id order.
CREATE INDEX users_by_zone ON users (time_zone, user_id);

CREATE TABLE notification_preferences (
    user_id     text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    enabled     boolean NOT NULL DEFAULT true,
    -- Local wall-clock times in the user's time zone; start inclusive, end
    -- exclusive, wrapping past midnight when start > end.
    quiet_start time,
    quiet_end   time,
    CONSTRAINT notification_preferences_quiet_pair CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
