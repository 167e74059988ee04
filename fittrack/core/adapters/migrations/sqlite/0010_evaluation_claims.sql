-- Evaluation work claimed by an evaluator (fittrack/core/ports.EvaluationClaimRepository), so several share it.

CREATE TABLE evaluation_claims (
    work_key    TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX evaluation_claims_unfinished ON evaluation_claims (lease_until) WHERE finished_at IS NULL;
