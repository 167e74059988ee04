-- The embedded profile's database: accounts, per-minute and daily metric values, the ingest log and the
-- device cursors, in one SQLite file (fittrack/core/adapters/sqlite.py).

CREATE TABLE users (
    user_id      TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(username) BETWEEN 3 AND 32),
    display_name TEXT NOT NULL DEFAULT '' CHECK (length(display_name) <= 64),
    time_zone    TEXT NOT NULL DEFAULT 'UTC',
    created_at   TEXT NOT NULL
);
CREATE TABLE credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    password_hash BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT
);
CREATE TABLE user_metric (
    user_id    TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    height_cm  REAL CHECK (height_cm IS NULL OR height_cm BETWEEN 50 AND 272),
    weight_kg  REAL CHECK (weight_kg IS NULL OR weight_kg BETWEEN 2 AND 650),
    birth_date TEXT,
    stated_age INTEGER CHECK (stated_age IS NULL OR stated_age BETWEEN 1 AND 130),
    sex        INTEGER NOT NULL DEFAULT 0 CHECK (sex BETWEEN 0 AND 3)
);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE TABLE goals (
    goal_id    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    metric     INTEGER NOT NULL CHECK (metric BETWEEN 1 AND 4),
    period     INTEGER NOT NULL CHECK (period IN (1, 2)),
    target     REAL NOT NULL CHECK (target > 0),
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, metric, period)
);
CREATE TABLE notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind            INTEGER NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    goal_id         TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    read            INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    idempotency_key TEXT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX notifications_by_user ON notifications (user_id, seq);
CREATE TABLE minute_values (
    user_id    TEXT NOT NULL,
    metric     INTEGER NOT NULL,
    source     TEXT NOT NULL,
    minute     INTEGER NOT NULL,
    local_date INTEGER NOT NULL,
    value      REAL NOT NULL CHECK (value >= 0),
    PRIMARY KEY (user_id, metric, source, minute)
) WITHOUT ROWID;
CREATE INDEX minute_values_by_day ON minute_values (user_id, metric, local_date);
CREATE TABLE daily_values (
    user_id    TEXT NOT NULL,
    metric     INTEGER NOT NULL,
    local_date INTEGER NOT NULL,
    value      REAL NOT NULL,
    min        REAL NOT NULL,
    max        REAL NOT NULL,
    minutes    INTEGER NOT NULL,
    PRIMARY KEY (user_id, metric, local_date)
) WITHOUT ROWID;
CREATE TABLE ingest_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL
);
CREATE TABLE device_cursors (
    user_id       TEXT NOT NULL,
    source        TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (user_id, source)
) WITHOUT ROWID;
