-- Downgrade tiers: [{"at_percent":80,"model":"alias"},{"at_percent":100,"model":"alias"}]. From the
-- highest tier reached (share of the daily budget spent), requests go to that tier's model.
ALTER TABLE api_keys ADD COLUMN budget_tiers jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(budget_tiers) = 'array');
