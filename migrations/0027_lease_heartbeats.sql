-- Leases of an instance that died are given back, without letting its late spend pass the cap. Each instance claims, per
-- lease, the most it may still charge to it (what it reserved and charged, plus a little headroom), and never reserves past
-- its claim; it beats a counter here every few seconds. Once an instance's counter has not moved for the reclaim bound,
-- another instance lowers each of its open leases to the claim: the unclaimed rest is free for everyone, and the claimed part
-- stays reserved for the rows the dead instance's journal may still bring (its in-flight requests, replayed at its next
-- start). That next start, once it has replayed the journal, closes the earlier run's leases at what they consumed.
CREATE TABLE gateway_instances (
    id            uuid PRIMARY KEY,
    -- The usage journal directory it writes (a file in that directory holds this id); null: journal off.
    journal_id    uuid,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    -- Others judge liveness by watching this move on their own clocks, so instances need not agree on the time.
    beats         bigint NOT NULL DEFAULT 0
);
CREATE INDEX gateway_instances_journal ON gateway_instances (journal_id);

-- Leases from before this migration have no owner and are never reclaimed (as before).
ALTER TABLE budget_leases
    ADD COLUMN instance_id  uuid,
    ADD COLUMN claimed      numeric(28, 12),
    ADD COLUMN reclaimed_at timestamptz;
CREATE INDEX budget_leases_open_by_instance ON budget_leases (instance_id) WHERE NOT closed;
