-- Failover: a model names the aliases to try after it, and its time-to-first-token deadline.
-- Usage rows say how many candidates were tried, whether a fallback served, and the attempt trail.
ALTER TABLE models ADD COLUMN fallbacks text[] NOT NULL DEFAULT '{}';
ALTER TABLE models ADD COLUMN ttft_timeout_ms integer CHECK (ttft_timeout_ms > 0);

ALTER TABLE usage_events ADD COLUMN attempts smallint NOT NULL DEFAULT 1;
ALTER TABLE usage_events ADD COLUMN fallback boolean NOT NULL DEFAULT false;
-- [{"provider":…,"model":…,"outcome":"ok|rate_limited|timeout|circuit_open|…","ms":…}, …]
ALTER TABLE usage_events ADD COLUMN attempt_trail jsonb;
