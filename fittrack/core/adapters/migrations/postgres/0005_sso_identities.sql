-- Single sign-on (core/domain/oidc.py): each (issuer, subject) an OpenID Provider vouches for names one
-- account; accounts are never linked by e-mail. An account made by SSO has no row in credentials.
CREATE TABLE sso_identities (
    issuer     text NOT NULL CONSTRAINT sso_identities_issuer_present CHECK (issuer <> ''),
    -- OpenID Connect Core 1.0 section 2: sub is at most 255 ASCII characters.
    subject    text NOT NULL CONSTRAINT sso_identities_subject_length CHECK (char_length(subject) BETWEEN 1 AND 255),
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);
-- Serves the cascade when a user is deleted, and for_user.
CREATE INDEX sso_identities_by_user ON sso_identities (user_id);

-- The nonces of accepted ID tokens, kept until those tokens expire, so that a token replayed to any server
-- is refused. Rows past expires_at are deleted as new ones come in.
CREATE TABLE sso_used_nonces (
    issuer     text NOT NULL,
    nonce      text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, nonce)
);
CREATE INDEX sso_used_nonces_by_expiry ON sso_used_nonces (expires_at);
