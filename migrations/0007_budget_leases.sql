-- Budgets that hold across instances without Redis: an instance leases a slice of a key's remaining
-- budget for the day and spends it locally. committed(key, day) = usage_daily.cost_usd + sum over that
-- day's leases of (amount - consumed); the usage writer moves each settled cost from a lease's
-- outstanding part into usage_daily in one transaction, so the sum never drops below real spend.
CREATE TABLE budget_leases (
    id          uuid PRIMARY KEY,
    key_id      uuid NOT NULL,
    day         date NOT NULL,
    amount      numeric(28, 12) NOT NULL CHECK (amount >= 0),
    consumed    numeric(28, 12) NOT NULL DEFAULT 0,
    closed      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX budget_leases_key_day ON budget_leases (key_id, day);

-- Which lease a request's cost was reserved from (null: no budget on the key).
ALTER TABLE usage_events ADD COLUMN lease_id uuid;

-- The alias a request asked for when its key's budget downgraded it to a cheaper model.
ALTER TABLE usage_events ADD COLUMN downgraded_from text;
