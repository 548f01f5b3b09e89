-- The prompt-injection filter. A key and a routing rule may each set an action (NULL: not set); the strictest of
-- Gateway:InjectionFilter, the key's and the matching rule's applies to a request.
ALTER TABLE api_keys ADD COLUMN injection_filter text CHECK (injection_filter IN ('off', 'flag', 'block'));
ALTER TABLE routing_rules ADD COLUMN injection_filter text CHECK (injection_filter IN ('off', 'flag', 'block'));

-- The categories the filter found in a request it flagged or blocked (e.g. {instruction_override}); NULL when it was off
-- for the request or found nothing. Added at the end, as the usage writer's staging table copies the column order.
ALTER TABLE usage_events ADD COLUMN injection_flags text[];
