-- An optional monthly budget per key (UTC calendar month).
ALTER TABLE api_keys ADD COLUMN monthly_budget_usd numeric(18, 6) CHECK (monthly_budget_usd >= 0);
