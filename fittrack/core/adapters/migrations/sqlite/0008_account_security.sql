-- Account security: failed logins per canonical username, existing or not (fittrack/core/domain/throttle.py),
-- and the expiry index the password-expiry notices look up by.

CREATE TABLE login_failures (
    username     TEXT PRIMARY KEY,
    window_start TEXT NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    pauses       INTEGER NOT NULL DEFAULT 0 CHECK (pauses >= 0),
    paused_until TEXT,
    last_failure TEXT
);
CREATE INDEX credentials_by_expiry ON credentials (expires_at);
