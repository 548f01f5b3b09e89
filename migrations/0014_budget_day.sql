-- The budget day a usage row counts on, in the gateway's budget time zone (Gateway:BudgetTimeZone, UTC by
-- default). It is computed once, by the gateway that served the request, so the daily aggregate, the
-- budget ledger and the reports cannot disagree about which day a request belongs to. Rows stored before
-- this column existed were counted on their UTC day.
ALTER TABLE usage_events ADD COLUMN day date;
UPDATE usage_events SET day = (occurred_at AT TIME ZONE 'UTC')::date WHERE day IS NULL;
ALTER TABLE usage_events ALTER COLUMN day SET NOT NULL;
