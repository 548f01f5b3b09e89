-- Admin tokens are checked against an in-memory snapshot (no query per admin call, so a flood of made-up tokens cannot
-- exhaust the database's connections); every instance reloads it when the table changes, like keys.
CREATE TRIGGER admin_tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON admin_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway_change();
