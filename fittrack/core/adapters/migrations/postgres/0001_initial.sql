-- The account database of the production profile: the same data as the embedded
-- SQLite schema (core/adapters/sqlite.py), with the domain's rules enforced by
-- PostgreSQL as well, so that a bug or a hand-written UPDATE cannot store what
-- the services would refuse. Limits mirror core/domain/accounts.py and goals.py.

CREATE TABLE users (
    user_id      text PRIMARY KEY,
    -- Stored in canonical form (core.domain.accounts.normalize_username); the
    -- index on lower() keeps uniqueness case-insensitive even if that CHECK is
    -- ever relaxed, and serves the lookups by username.
    username     text NOT NULL
        CONSTRAINT users_username_canonical CHECK (username = lower(username))
        CONSTRAINT users_username_charset CHECK (username ~ '^[a-z0-9._-]{3,32}$'),
    display_name text NOT NULL DEFAULT ''
        CONSTRAINT users_display_name_length CHECK (char_length(display_name) <= 64),
    time_zone    text NOT NULL DEFAULT 'UTC' CONSTRAINT users_time_zone_present CHECK (time_zone <> ''),
    created_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE credentials (
    user_id       text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    password_hash bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz  -- NULL: the password never expires
);

CREATE TABLE user_metric (
    user_id    text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    height_cm  double precision CONSTRAINT user_metric_height CHECK (height_cm BETWEEN 50 AND 272),
    weight_kg  double precision CONSTRAINT user_metric_weight CHECK (weight_kg BETWEEN 2 AND 650),
    birth_date date,
    stated_age smallint CONSTRAINT user_metric_stated_age CHECK (stated_age BETWEEN 1 AND 130),
    sex        smallint NOT NULL DEFAULT 0 CONSTRAINT user_metric_sex CHECK (sex BETWEEN 0 AND 3),
    -- A birth date replaces a stated age and the other way round (ProfileChanges.apply_to).
    CONSTRAINT user_metric_one_age CHECK (birth_date IS NULL OR stated_age IS NULL)
);

CREATE TABLE sessions (
    session_id text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
-- revoke_all touches only the live sessions; the full index serves the cascade.
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used       boolean NOT NULL DEFAULT false
);
-- Without these, deleting a session or a user scans every refresh token.
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE goals (
    goal_id    text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    metric     smallint NOT NULL CONSTRAINT goals_metric CHECK (metric BETWEEN 1 AND 4),
    period     smallint NOT NULL CONSTRAINT goals_period CHECK (period IN (1, 2)),
    -- 'Infinity' excludes NaN too: PostgreSQL sorts NaN above every number.
    target     double precision NOT NULL CONSTRAINT goals_target CHECK (target > 0 AND target < 'Infinity'),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Also the index of list_for_user (its leading column).
    CONSTRAINT goals_one_per_metric_and_period UNIQUE (user_id, metric, period)
);

CREATE TABLE notifications (
    -- The paging cursor: newest first is highest seq first.
    seq             bigserial PRIMARY KEY,
    notification_id text NOT NULL UNIQUE,
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind            smallint NOT NULL CONSTRAINT notifications_kind CHECK (kind > 0),
    title           text NOT NULL,
    body            text NOT NULL,
    goal_id         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    read            boolean NOT NULL DEFAULT false,
    idempotency_key text NOT NULL,
    CONSTRAINT notifications_once_per_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX notifications_by_user ON notifications (user_id, seq);
-- Every page reports the unread count; unread ones are few, so a partial index stays small.
CREATE INDEX notifications_unread_by_user ON notifications (user_id, seq) WHERE NOT read;

-- The highest batch sequence seen per device, to tell a resent batch from a new one.
-- No foreign key: the reading bus records cursors without touching account rows,
-- and a batch racing an account deletion must not fail on it; Users.delete
-- removes the user's cursors explicitly instead.
CREATE TABLE device_cursors (
    user_id       text NOT NULL,
    source        text NOT NULL,
    last_sequence bigint NOT NULL CONSTRAINT device_cursors_sequence CHECK (last_sequence >= 0),
    PRIMARY KEY (user_id, source)
);
