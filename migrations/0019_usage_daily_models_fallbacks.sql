-- Requests a fallback served, per key, budget day, provider and model, so the spend dashboard shows a fallback rate for
-- any range from the daily aggregates (as it does the error rate) instead of counting usage rows. The usage writer adds
-- to it in the same upsert as the other sums.
ALTER TABLE usage_daily_models ADD COLUMN fallbacks bigint NOT NULL DEFAULT 0;

-- The rows stored so far. Rows that an instance still on the previous version stores after this count 0 fallbacks, so
-- upgrade all instances together.
UPDATE usage_daily_models AS m SET fallbacks = f.fallbacks
FROM (SELECT day, key_id, coalesce(provider, '(none)') AS provider, coalesce(served_model, asked_model, '(none)') AS model,
             count(*) AS fallbacks
      FROM usage_events WHERE fallback
      GROUP BY 1, 2, 3, 4) AS f
WHERE m.day = f.day AND m.key_id = f.key_id AND m.provider = f.provider AND m.model = f.model;
