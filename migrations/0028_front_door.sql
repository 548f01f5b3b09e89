-- The front door a request came in through: the API its client spoke (OpenAI chat completions or embeddings, Anthropic
-- messages, OpenAI responses), so spend can be split by the kind of client. Rows stored before stay null: they all came
-- through the OpenAI door, the only one there was.
ALTER TABLE usage_events ADD COLUMN front_door text;
