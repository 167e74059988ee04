-- The first position in the reading log (Kafka partition and offset) of each numbered batch of a device
-- (core/ports.BatchClaims): the persister applies that copy only, so a resend answered DUPLICATE never
-- changes what is stored, even when it carries other readings or was published by another server.
-- Rows go a week after they were claimed (the `readings` topic's retention): no copy is read after that.

CREATE TABLE batch_claims (
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    source          text NOT NULL,
    sequence        bigint NOT NULL CONSTRAINT batch_claims_sequence CHECK (sequence > 0),
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    claimed_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, source, sequence)
);

CREATE INDEX batch_claims_claimed_at ON batch_claims (claimed_at);
