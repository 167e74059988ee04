-- Account security: failed logins per canonical username, whether or not an
-- account has that name (core/domain/throttle.py), shared by every server;
-- and an index for the password-expiry notices, which look credentials up by
-- when they expire.

CREATE TABLE login_failures (
    username     text PRIMARY KEY
        CONSTRAINT login_failures_username_canonical CHECK (username ~ '^[a-z0-9._-]{3,32}$'),
    window_start timestamptz NOT NULL,
    count        integer NOT NULL CONSTRAINT login_failures_count CHECK (count >= 0),
    pauses       integer NOT NULL DEFAULT 0 CONSTRAINT login_failures_pauses CHECK (pauses >= 0),
    paused_until timestamptz,
    last_failure timestamptz
);

CREATE INDEX credentials_by_expiry ON credentials (expires_at) WHERE expires_at IS NOT NULL;
