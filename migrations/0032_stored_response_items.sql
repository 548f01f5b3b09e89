-- A stored response's conversation is kept as Responses input items (earlier turns, this turn's input, the output items as the
-- upstream wrote them), no longer as chat messages: a request passed through to a provider that serves the Responses API is sent
-- them as its input (reasoning and built-in tool items included), and the translation to chat reads them like a client's input.
ALTER TABLE stored_responses RENAME COLUMN messages TO items;

-- Rows stored in chat form by the previous version become items: a message per user/system/developer message and per
-- assistant text, a function_call per assistant tool call, a function_call_output per tool message.
UPDATE stored_responses SET items = converted.items
FROM (
    SELECT s.id, coalesce(jsonb_agg(x.item ORDER BY m.ord, x.sub) FILTER (WHERE x.item IS NOT NULL), '[]'::jsonb) AS items
    FROM stored_responses s
    CROSS JOIN LATERAL jsonb_array_elements(s.items) WITH ORDINALITY AS m(msg, ord)
    CROSS JOIN LATERAL (
        SELECT 0::bigint AS sub, jsonb_build_object('type', 'message', 'role', m.msg->>'role', 'content', m.msg->'content') AS item
        WHERE m.msg->>'role' IN ('user', 'system', 'developer')
           OR (m.msg->>'role' = 'assistant' AND jsonb_typeof(m.msg->'content') IN ('string', 'array'))
        UNION ALL
        SELECT c.n, jsonb_build_object('type', 'function_call', 'call_id', c.call->>'id', 'name', c.call->'function'->>'name',
            'arguments', c.call->'function'->>'arguments')
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m.msg->'tool_calls') = 'array' THEN m.msg->'tool_calls' ELSE '[]'::jsonb END)
            WITH ORDINALITY AS c(call, n)
        UNION ALL
        SELECT 0, jsonb_build_object('type', 'function_call_output', 'call_id', m.msg->>'tool_call_id', 'output', m.msg->'content')
        WHERE m.msg->>'role' = 'tool'
    ) x
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(s.items) e WHERE e ? 'type')
    GROUP BY s.id
) converted
WHERE stored_responses.id = converted.id;
