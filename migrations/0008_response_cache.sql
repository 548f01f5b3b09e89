-- Exact-match response cache shared by every instance. UNLOGGED: fast, and losing it in a crash
-- only costs cache misses.
CREATE UNLOGGED TABLE response_cache (
    cache_key         bytea PRIMARY KEY,
    body              bytea NOT NULL,
    provider          text NOT NULL,
    served_model      text,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    cached_tokens     integer NOT NULL,
    expires_at        timestamptz NOT NULL
);
CREATE INDEX response_cache_expiry ON response_cache (expires_at);

-- Per key: how long deterministic answers are cached (null: no caching, the default).
ALTER TABLE api_keys ADD COLUMN cache_ttl_seconds integer CHECK (cache_ttl_seconds > 0);

ALTER TABLE usage_events ADD COLUMN cache_hit boolean NOT NULL DEFAULT false;
