-- wrk script: one chat completion per request (model BENCH_MODEL, default "bench"); GW_KEY (if set) is the bearer token.
-- Counts the requests each thread sends and writes the total to BENCH_SENT_FILE at the end, so rows stored can be
-- compared with requests sent (wrk itself counts only answered ones). BENCH_DELAY_MS (if set) pauses each connection
-- that long between requests, which paces the soak below the saturated rate. BENCH_HEADERS (if set) adds request headers,
-- one "Name: value" a line (bench/run.sh routes its Portkey rows with them); unset, the request is unchanged.
wrk.method = "POST"
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench") .. '","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("GW_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
  if name and name ~= "" then wrk.headers[name] = value end
end
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")

local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  sent = 0
  req = wrk.format()
end

function request()
  sent = sent + 1
  return req
end

if pause then
  function delay() return pause end
end

function done(summary, latency, requests)
  -- wrk calls request() once on the first thread before the run, to check the script: that one is never sent.
  local total = -1
  for _, t in ipairs(threads) do total = total + t:get("sent") end
  local file = os.getenv("BENCH_SENT_FILE")
  if file then
    local f = io.open(file, "w")
    f:write(total)
    f:close()
  end
end
