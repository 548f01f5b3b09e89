-- Daily aggregates per key, budget day, provider and model, so spend by model or provider and the FOCUS
-- export read a row per group and day instead of every usage row. The usage writer upserts it from the rows
-- it actually inserts, in the same transaction as usage_events and usage_daily. Groups as the reports do: a
-- row with no provider counts as '(none)', its model is the served one, else the asked one, else '(none)'.
CREATE TABLE usage_daily_models (
    day               date NOT NULL,
    key_id            uuid NOT NULL,
    provider          text NOT NULL,
    model             text NOT NULL,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cached_tokens     bigint NOT NULL,
    -- As wide as usage_daily's: a sum of many numeric(28, 12) costs.
    cost_usd          numeric(32, 12) NOT NULL,
    -- Day first: every report reads a range of days.
    PRIMARY KEY (day, key_id, provider, model)
);

-- The rows stored so far. Rows that an instance still on the previous version stores after this are not
-- counted here, so upgrade all instances together.
INSERT INTO usage_daily_models (day, key_id, provider, model, requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
SELECT day, key_id, coalesce(provider, '(none)'), coalesce(served_model, asked_model, '(none)'),
       count(*), count(*) FILTER (WHERE status >= 400), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cost_usd)
FROM usage_events
GROUP BY 1, 2, 3, 4;
