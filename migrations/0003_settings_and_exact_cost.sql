-- Per-provider protocol settings (anthropic-version, OpenAI-compatible quirks) and a per-model
-- default for max output tokens (Anthropic requires max_tokens on every request).
ALTER TABLE providers ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(settings) = 'object');
ALTER TABLE models ADD COLUMN max_output_tokens integer CHECK (max_output_tokens > 0);

-- Prices carry 6 decimals per million tokens, so a cost needs 12 decimals to stay exact
-- (numeric(20,10) rounded silently).
ALTER TABLE usage_events ALTER COLUMN cost_usd TYPE numeric(28, 12);
ALTER TABLE usage_daily ALTER COLUMN cost_usd TYPE numeric(32, 12);
