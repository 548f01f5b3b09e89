-- Budgets for a team, project or any tag of keys: every key carrying the tag spends from it.
CREATE TABLE tag_budgets (
    tag                 text PRIMARY KEY,
    daily_budget_usd    numeric(18, 6) CHECK (daily_budget_usd >= 0),
    monthly_budget_usd  numeric(18, 6) CHECK (monthly_budget_usd >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tag_budgets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tag_budgets
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();
