-- wrk script: one chat completion per request; GW_KEY (if set) is sent as the bearer token.
wrk.method = "POST"
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench") .. '","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("GW_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
