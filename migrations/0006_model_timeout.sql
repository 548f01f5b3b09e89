-- A model's total deadline for one call (a whole stream included); null: Gateway:Upstream:TimeoutSeconds.
ALTER TABLE models ADD COLUMN timeout_ms integer CHECK (timeout_ms > 0);
