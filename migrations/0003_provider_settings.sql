-- Per-provider protocol settings (anthropic-version, OpenAI-compatible quirks) and a per-model
-- default for max output tokens (Anthropic requires max_tokens on every request).
ALTER TABLE providers ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(settings) = 'object');
ALTER TABLE models ADD COLUMN max_output_tokens integer CHECK (max_output_tokens > 0);
