-- Evaluation work claimed by an evaluator process (core/ports.EvaluationClaimRepository):
-- a slot of one zone's day, or a zone's Monday report notice, is done by whoever
-- claims it first, so several evaluators share the work. A claim is a lease; one
-- whose lease ran out unfinished is taken over by another evaluator.

CREATE TABLE evaluation_claims (
    work_key    text PRIMARY KEY,
    holder      text NOT NULL,
    lease_until timestamptz NOT NULL,
    finished_at timestamptz
);

CREATE INDEX evaluation_claims_unfinished ON evaluation_claims (lease_until) WHERE finished_at IS NULL;
