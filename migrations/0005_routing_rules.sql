-- Routing rules: ordered by priority; the first enabled rule whose conditions all hold picks the
-- target (weighted models, sticky per end user) and the fallback chain. No match: the asked alias.
CREATE TABLE routing_rules (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    priority    integer NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- {"models":[…],"key_ids":[…],"key_tags":[…],"users":[…],"headers":{…},"metadata":{…},
    --  "min_prompt_tokens":n,"max_prompt_tokens":n,"min_max_tokens":n,"max_max_tokens":n,
    --  "has_tools":b,"has_images":b,"prompt_regex":"…","prompt_keywords":[…]}
    match       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(match) = 'object'),
    -- [{"model":"alias","weight":90},{"model":"alias-b","weight":10}]
    targets     jsonb NOT NULL CHECK (jsonb_typeof(targets) = 'array' AND jsonb_array_length(targets) > 0),
    fallbacks   text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER routing_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON routing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();

-- Keys carry tags (team, project…) that rules and reports can use.
ALTER TABLE api_keys ADD COLUMN tags text[] NOT NULL DEFAULT '{}';

-- Which rule routed a request (null: the alias itself).
ALTER TABLE usage_events ADD COLUMN routing_rule text;
