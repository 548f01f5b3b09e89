#!/usr/bin/env bash
# The benchmark: a fast fake OpenAI upstream, a private PostgreSQL, the gateway (Release, metering on),
# and wrk. Prints req/s, p50 and p99 latency for direct-to-upstream vs through-the-gateway, the
# gateway's peak RSS, and usage rows stored vs requests answered.
#   bench/run.sh                     # 10 s per scenario
#   BENCH_DURATION=30s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
DURATION=${BENCH_DURATION:-10s}
UP_PORT=${BENCH_UPSTREAM_PORT:-18091}
GW_PORT=${BENCH_GATEWAY_PORT:-18090}
PG_PORT=${BENCH_PG_PORT:-55491}
mkdir -p "$OUT"

if ! command -v wrk >/dev/null 2>&1; then
  echo "Installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/private-postgres.sh stop "$OUT/pg" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "Building (Release)"
dotnet build Gateway.Api/Gateway.Api.csproj -c Release --nologo -v quiet -clp:NoSummary >/dev/null
dotnet build bench/FakeUpstream/FakeUpstream.csproj -c Release --nologo -v quiet -clp:NoSummary >/dev/null

rm -rf "$OUT/pg" "$OUT/pg.password"
export ConnectionStrings__Gateway
ConnectionStrings__Gateway=$(PG_EXTRA_OPTIONS="-c max_connections=200" scripts/private-postgres.sh start "$OUT/pg" "$PG_PORT")

ASPNETCORE_URLS="http://127.0.0.1:$UP_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)

cat > "$OUT/gateway.json" <<JSON
{ "providers": [ { "name": "bench-upstream", "protocol": "openai", "base_url": "http://127.0.0.1:$UP_PORT/v1" } ],
  "models": [ { "alias": "bench", "provider": "bench-upstream", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 } ] }
JSON
MASTER=bench-master-key
Gateway__MasterKey=$MASTER Gateway__SeedFile="$OUT/gateway.json" Gateway__DataProtectionKeysDirectory="$OUT/keys" \
  Logging__LogLevel__Default=Warning ASPNETCORE_URLS="http://127.0.0.1:$GW_PORT" \
  dotnet Gateway.Api/bin/Release/net10.0/Gateway.Api.dll --contentRoot "$ROOT/Gateway.Api/bin/Release/net10.0" > "$OUT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null 2>&1 && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$UP_PORT/v1/chat/completions" -d '{}' 2>/dev/null && break
  sleep 0.5
done
GW_KEY=$(curl -fsS "http://127.0.0.1:$GW_PORT/admin/keys" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')

psql_count() {
  PGPASSWORD=$(cat "$OUT/pg.password") /usr/lib/postgresql/*/bin/psql "postgresql://postgres@127.0.0.1:$PG_PORT/gateway" \
    -tAc "SELECT count(*) FROM usage_events" | tr -d ' '
}

# run NAME URL CONNECTIONS KEY -> one table row
run() {
  local name=$1 url=$2 conns=$3 key=$4 file="$OUT/wrk-$1-$3.txt"
  local threads=$(( conns < 2 ? 1 : 2 ))
  GW_KEY=$key wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s bench/chat.lua "$url/v1/chat/completions" > "$file"
  local rps p50 p99 total non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$file")
  p50=$(awk '/^ +50%/ {print $2}' "$file")
  p99=$(awk '/^ +99%/ {print $2}' "$file")
  total=$(awk '/requests in/ {print $1}' "$file")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$file")
  printf '| %-8s | %5s | %10s | %9s | %9s | %9s |\n' "$name" "$conns" "$rps" "$p50" "$p99" "${non2xx:-0}"
  echo "$total" >> "$OUT/$name.count"
}

rm -f "$OUT"/*.count
echo "Warming up"
GW_KEY=$GW_KEY wrk -t2 -c32 -d3s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$OUT/wrk-warmup.txt"
GW_KEY="" wrk -t2 -c32 -d3s -s bench/chat.lua "http://127.0.0.1:$UP_PORT/v1/chat/completions" > /dev/null
rows_before=$(psql_count)

echo
echo "Non-streaming chat completions, 0 ms upstream, $DURATION per row, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "| target   | conns |      req/s |       p50 |       p99 |  non-2xx |"
echo "|----------|-------|------------|-----------|-----------|----------|"
for c in 1 32; do
  run direct "http://127.0.0.1:$UP_PORT" "$c" ""
  run gateway "http://127.0.0.1:$GW_PORT" "$c" "$GW_KEY"
done

sent=$(paste -sd+ "$OUT/gateway.count" | bc)
rows=$(( $(psql_count) - rows_before ))
for _ in $(seq 1 40); do
  [ "$rows" -ge "$sent" ] && break
  sleep 0.25; rows=$(( $(psql_count) - rows_before ))
done
echo
echo "Gateway peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$GW_PID/status)"
echo "Usage rows stored: $rows for $sent requests wrk counted as answered (rows may exceed by requests cut at the end of a run)"
