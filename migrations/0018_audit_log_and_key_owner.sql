-- Every change made in the admin app or the admin REST API: who, when, what, and the record before and
-- after (secrets masked before they get here).
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    entity     text NOT NULL,
    entity_id  text NOT NULL,
    before     jsonb,
    after      jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);

-- Who a key belongs to (a person or a service), for the admin app's key list.
ALTER TABLE api_keys ADD COLUMN owner text;
