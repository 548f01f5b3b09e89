-- Admin tokens: named bearer tokens for the admin REST API besides the master key (scripts, CI, other teams),
-- each revocable on its own. Only a SHA-256 hash and a short prefix are stored; audit entries name the token.
CREATE TABLE admin_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    prefix      text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
