-- Foundation schema: keys, providers, models with prices, usage events (partitioned by day),
-- daily per-key aggregates. Applied by DbUp in one transaction per file, under an advisory lock.

CREATE TABLE providers (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    protocol    text NOT NULL CHECK (protocol IN ('openai', 'anthropic', 'gemini', 'mock')),
    base_url    text NOT NULL,
    -- 'env:NAME', 'file:/path' or 'enc:<Data Protection payload>'; never a clear-text secret.
    secret_ref  text,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE models (
    id                          uuid PRIMARY KEY,
    alias                       text NOT NULL UNIQUE,
    provider_id                 uuid NOT NULL REFERENCES providers (id),
    upstream_model              text NOT NULL,
    -- USD per million tokens, exact.
    input_price_per_mtok        numeric(18, 6) NOT NULL DEFAULT 0 CHECK (input_price_per_mtok >= 0),
    output_price_per_mtok       numeric(18, 6) NOT NULL DEFAULT 0 CHECK (output_price_per_mtok >= 0),
    cached_input_price_per_mtok numeric(18, 6) NOT NULL DEFAULT 0 CHECK (cached_input_price_per_mtok >= 0),
    context_window              integer CHECK (context_window > 0),
    enabled                     boolean NOT NULL DEFAULT true,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id                uuid PRIMARY KEY,
    name              text NOT NULL,
    -- First characters of the key, shown to admins to tell keys apart; not enough to use it.
    prefix            text NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    key_hash          bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    allowed_models    text[] NOT NULL DEFAULT '{}',
    daily_budget_usd  numeric(18, 6) CHECK (daily_budget_usd >= 0),
    hard_cap_usd      numeric(18, 6) CHECK (hard_cap_usd >= 0),
    downgrade_model   text,
    rpm_limit         integer CHECK (rpm_limit > 0),
    tpm_limit         integer CHECK (tpm_limit > 0),
    expires_at        timestamptz,
    revoked_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE usage_events (
    request_id              uuid NOT NULL,
    occurred_at             timestamptz NOT NULL,
    key_id                  uuid NOT NULL,
    end_user                text,
    asked_model             text,
    served_model            text,
    provider                text,
    prompt_tokens           integer NOT NULL DEFAULT 0,
    completion_tokens       integer NOT NULL DEFAULT 0,
    cached_tokens           integer NOT NULL DEFAULT 0,
    usage_estimated         boolean NOT NULL DEFAULT false,
    -- Price snapshot (USD per million tokens) used for cost_usd, so a later price change never
    -- rewrites history.
    input_price_per_mtok        numeric(18, 6),
    output_price_per_mtok       numeric(18, 6),
    cached_input_price_per_mtok numeric(18, 6),
    cost_usd                numeric(20, 10) NOT NULL DEFAULT 0,
    latency_ms              integer NOT NULL,
    ttft_ms                 integer,
    status                  smallint NOT NULL,
    error_kind              text,
    streamed                boolean NOT NULL,
    PRIMARY KEY (request_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Catches rows for days whose partition does not exist yet, so a row is never refused.
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

CREATE INDEX usage_events_key_time ON usage_events (key_id, occurred_at);

CREATE TABLE usage_daily (
    key_id            uuid NOT NULL,
    day               date NOT NULL,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cached_tokens     bigint NOT NULL,
    cost_usd          numeric(24, 10) NOT NULL,
    PRIMARY KEY (key_id, day)
);

-- Creates the partition for one UTC day; a no-op when it exists.
CREATE FUNCTION ensure_usage_partition(d date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    part text := 'usage_events_' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
            part, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
    END IF;
END $$;

-- Every gateway instance LISTENs on gateway_changes and reloads the named snapshot.
CREATE FUNCTION notify_gateway_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_changes', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();
CREATE TRIGGER providers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON providers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();
