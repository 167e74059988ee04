-- Failed logins per client address (fittrack/core/domain/throttle.AddressPolicy), one row each, kept for a
-- minute: every server process on this file counts them. failed_at is Unix seconds.

CREATE TABLE address_login_failures (
    address   TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX address_login_failures_by_address ON address_login_failures (address, failed_at);
CREATE INDEX address_login_failures_by_time ON address_login_failures (failed_at);
