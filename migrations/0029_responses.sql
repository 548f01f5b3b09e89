-- Responses stored by POST /v1/responses (store, the Responses API's default): the response object as the client got it, and the
-- conversation in the pipeline's canonical form (chat messages: earlier turns, this turn's input, the answer) that a later
-- request's previous_response_id continues. Readable only with the key that created it; rows past expires_at
-- (Gateway:Responses:RetentionDays after creation) are never read and are deleted in batches on later writes.
CREATE TABLE stored_responses (
    id          text PRIMARY KEY,
    key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    messages    jsonb NOT NULL,
    response    jsonb NOT NULL
);

CREATE INDEX stored_responses_expires_at ON stored_responses (expires_at);
