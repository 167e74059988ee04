-- Failed logins per client address (core/domain/throttle.AddressPolicy), shared by every server so that
-- the per-address limit holds however many servers stand behind the load balancer. One row per failure,
-- inserted without locks; a row is kept for the limit's window (a minute): recording a failure deletes
-- that address's expired rows, and housekeeping deletes everyone's every minute.

CREATE TABLE address_login_failures (
    address   text NOT NULL CONSTRAINT address_login_failures_address CHECK (length(address) BETWEEN 1 AND 64),
    failed_at timestamptz NOT NULL
);

CREATE INDEX address_login_failures_by_address ON address_login_failures (address, failed_at);
CREATE INDEX address_login_failures_by_time ON address_login_failures (failed_at);
