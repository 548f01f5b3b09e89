-- What start-up seeding did once for this database, so it never does it again whatever became of the result: the demo
-- key is recorded here by its id when it is issued, and a renamed, revoked or deleted demo key is not issued anew.
-- Instances starting together race on the primary key, so exactly one of them issues it.
CREATE TABLE seed_markers (
    name        text PRIMARY KEY,
    ref_id      uuid,
    created_at  timestamptz NOT NULL
);

-- Databases seeded before this table existed tracked the demo key by its name only: the oldest key named 'demo' is it.
INSERT INTO seed_markers (name, ref_id, created_at)
SELECT 'demo_key', id, created_at FROM api_keys WHERE name = 'demo' ORDER BY created_at, id LIMIT 1;
