-- A daily budget for each end user (the request's "user") of a key.
ALTER TABLE api_keys ADD COLUMN end_user_daily_budget_usd numeric(18, 6) CHECK (end_user_daily_budget_usd >= 0);
-- Spend per end user and day is summed from usage_events; this index keeps that cheap.
CREATE INDEX usage_events_key_user_time ON usage_events (key_id, end_user, occurred_at) WHERE end_user IS NOT NULL;
