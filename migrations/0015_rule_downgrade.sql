-- A routing rule can name where its requests go when the key is over its daily budget (or its hard cap has no
-- room), for keys that name no downgrade model of their own; the key's own choice still comes first.
ALTER TABLE routing_rules ADD COLUMN downgrade_model text;
