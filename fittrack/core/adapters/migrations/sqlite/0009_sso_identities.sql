-- Single sign-on: each (issuer, subject) names one account, and the nonces of accepted ID tokens are kept
-- until those tokens expire (expires_at is Unix seconds), so a replayed one is refused.

CREATE TABLE sso_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX sso_identities_by_user ON sso_identities (user_id);
CREATE TABLE sso_used_nonces (
    issuer     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (issuer, nonce)
);
CREATE INDEX sso_used_nonces_by_expiry ON sso_used_nonces (expires_at);
