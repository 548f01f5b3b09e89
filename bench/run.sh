#!/usr/bin/env bash
# The performance suite: fast fake OpenAI upstreams (0 ms and 50 ms), a private PostgreSQL, the gateway in Release with
# auth, budgets and metering to PostgreSQL on, and wrk (plus bench/LoadGen for streamed time to first token).
#   bench/run.sh            the scenario table, then usage_events grown to BENCH_GROW_ROWS and the 32-connection row again
#   bench/run.sh soak       BENCH_SOAK_SECONDS (600) at about half the saturated rate; RSS and GC heap every 10 s
#   bench/run.sh quick      only the saturated row (0 ms upstream, 32 connections): for trying a change
#   bench/run.sh memory     RSS after start-up (before any request), the 128-connection rows (peak RSS), RSS 10 s after them
#   bench/run.sh serve      start everything, print the URLs and key, and wait (Ctrl-C stops it): for trying by hand
#   bench/run.sh profile    15 s of CPU samples of the gateway at 32 connections (perf, with the JIT's symbol map), top symbols printed
# Columns: CPU ms and alloc KB are the gateway's CPU time (user+sys, /proc) and managed allocations per request sent.
# Settings: BENCH_DURATION (10s per row), BENCH_GROW_ROWS (10000000; 0 skips), BENCH_CONNS ("1 32 128"),
# BENCH_SCENARIOS ("chat0 chat50 stream": which groups of rows the table runs),
# BENCH_GATEWAY_ENV (extra environment for the gateway process only, e.g. "DOTNET_gcServer=0").
# Everything it writes goes to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
MODE=${1:-table}
DURATION=${BENCH_DURATION:-10s}
SECONDS_PER_ROW=${DURATION%s}
CONNS=${BENCH_CONNS:-1 32 128}
GROW_ROWS=${BENCH_GROW_ROWS:-10000000}
SCENARIOS=${BENCH_SCENARIOS:-chat0 chat50 stream}
UP0_PORT=${BENCH_UPSTREAM_PORT:-18091}
UP50_PORT=$((UP0_PORT + 1))
GW_PORT=${BENCH_GATEWAY_PORT:-18090}
PG_PORT=${BENCH_PG_PORT:-55491}
TICKS=$(getconf CLK_TCK)
mkdir -p "$OUT"

for tool in wrk bc; do
  command -v $tool >/dev/null 2>&1 || { echo "Installing $tool"; apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/private-postgres.sh stop "$OUT/pg" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "Building (Release)"
for project in Gateway.Api/Gateway.Api.csproj bench/FakeUpstream/FakeUpstream.csproj bench/LoadGen/LoadGen.csproj bench/Micro/Micro.csproj; do
  dotnet build "$project" -c Release --nologo -v quiet -clp:NoSummary >/dev/null
done

rm -rf "$OUT/pg" "$OUT/pg.password" "$OUT/journal"
export ConnectionStrings__Gateway
ConnectionStrings__Gateway=$(PG_EXTRA_OPTIONS="-c max_connections=200" scripts/private-postgres.sh start "$OUT/pg" "$PG_PORT")
PSQL=("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" "postgresql://postgres@127.0.0.1:$PG_PORT/gateway" -qtA)
export PGPASSWORD; PGPASSWORD=$(cat "$OUT/pg.password")

# The 50 ms upstream streams 16 content chunks 5 ms apart after its 50 ms time to first token.
FAKE_DELAY_MS=0 ASPNETCORE_URLS="http://127.0.0.1:$UP0_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)
FAKE_DELAY_MS=50 FAKE_CHUNK_MS=5 ASPNETCORE_URLS="http://127.0.0.1:$UP50_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)

cat > "$OUT/gateway.json" <<JSON
{ "providers": [ { "name": "upstream-0ms", "protocol": "openai", "base_url": "http://127.0.0.1:$UP0_PORT/v1" },
                 { "name": "upstream-50ms", "protocol": "openai", "base_url": "http://127.0.0.1:$UP50_PORT/v1" } ],
  "models": [ { "alias": "bench", "provider": "upstream-0ms", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 },
              { "alias": "bench-50", "provider": "upstream-50ms", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 } ] }
JSON
MASTER=bench-master-key
# profile: the JIT writes /tmp/perf-PID.map, so perf can name managed frames.
[ "$MODE" = profile ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
env ${BENCH_GATEWAY_ENV:-} Gateway__MasterKey=$MASTER Gateway__SeedFile="$OUT/gateway.json" Gateway__DataProtectionKeysDirectory="$OUT/keys" \
  Gateway__Metering__JournalDirectory="$OUT/journal" Logging__LogLevel__Default=Warning ASPNETCORE_URLS="http://127.0.0.1:$GW_PORT" \
  dotnet Gateway.Api/bin/Release/net10.0/Gateway.Api.dll --contentRoot "$ROOT/Gateway.Api/bin/Release/net10.0" > "$OUT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null 2>&1 \
    && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$UP0_PORT/v1/chat/completions" -d '{}' 2>/dev/null \
    && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$UP50_PORT/v1/chat/completions" -d '{}' 2>/dev/null && break
  sleep 0.5
done
# Budgets on: a daily budget (downgrade threshold) and a hard cap (leased slices), both far above what the run spends.
GW_KEY=$(curl -fsS "http://127.0.0.1:$GW_PORT/admin/keys" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d '{"name":"bench","daily_budget_usd":100000,"hard_cap_usd":1000000}' | sed -E 's/.*"key":"([^"]+)".*/\1/')

rows() { "${PSQL[@]}" -c "SELECT count(*) FROM usage_events"; }
# Bytes the gateway has allocated since it started (the runtime's own counter, from /metrics).
allocated() { curl -fsS "http://127.0.0.1:$GW_PORT/metrics" | awk '/^dotnet_gc_heap_total_allocated_bytes/ {print $NF}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
rss_mb() { awk -v f="$1" '$1 == f":" {printf "%.0f", $2 / 1024}' "/proc/$GW_PID/status"; }
# wrk prints latencies as 306.00us, 2.40ms or 1.02s.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.3f", n }'; }
# Waits until the writer has stored at least $1 rows more than $2 (or 20 s), then prints how many it stored.
stored_since() {
  local want=$1 before=$2 got
  for _ in $(seq 1 80); do
    got=$(( $(rows) - before )); [ "$got" -ge "$want" ] && break; sleep 0.25
  done
  sleep 0.5; echo $(( $(rows) - before ))
}

# The row count once the writer has caught up (two reads a second apart agree): the baseline a run's rows are counted from.
settled_rows() {
  local last now
  last=$(rows)
  while sleep 1; now=$(rows); [ "$now" != "$last" ]; do last=$now; done
  echo "$now"
}

declare -A DIRECT
# Before and after a row: usage rows, the gateway's CPU ticks and its allocated bytes.
begin_row() { before=$(rows); alloc0=$(allocated); ticks0=$(cpu_ticks); }
end_row() { ticks1=$(cpu_ticks); alloc1=$(allocated); }

# result_row SCENARIO TARGET CONNS REQ/S P50 P90 P99 SENT TROUBLE -> the table row. A direct row is kept for the added-latency
# column of the gateway row after it; a gateway row adds its CPU, allocations, RSS and rows stored (waiting for the writer).
result_row() {
  local scenario=$1 target=$2 conns=$3 rps=$4 p50=$5 p90=$6 p99=$7 sent=$8 trouble=$9
  if [ "$target" = direct ]; then
    DIRECT[$scenario-$conns]="$p50 $p99"
    emit "$scenario" "$target" "$conns" "$rps" "$p50" "$p90" "$p99" "" "" "" "" "$trouble"
    return
  fi
  local stored cpu alloc added d50 d99
  stored=$(stored_since "$sent" "$before")
  cpu=$(echo "scale=4; ($ticks1 - $ticks0) * 1000 / $TICKS / $sent" | bc)
  alloc=$(echo "scale=1; ($alloc1 - $alloc0) / $sent / 1024" | bc)
  read -r d50 d99 <<< "${DIRECT[$scenario-$conns]}"
  added=$(printf '+%.2f / +%.2f' "$(echo "$p50 - $d50" | bc)" "$(echo "$p99 - $d99" | bc)")
  emit "$scenario" "$target" "$conns" "$rps" "$p50" "$p90" "$p99" "$added" "$cpu" "$alloc" "$(rss_mb VmRSS) ($(rss_mb VmHWM))" \
    "$stored / $sent$([ -z "$trouble" ] || echo ", $trouble")"
}

# wrk_row SCENARIO TARGET CONNS URL MODEL KEY -> table row from wrk.
wrk_row() {
  local scenario=$1 target=$2 conns=$3 url=$4 model=$5 key=$6 file="$OUT/wrk-$1-$2-$3.txt"
  local threads=$(( conns < 2 ? 1 : 2 )) non2xx
  begin_row
  BENCH_MODEL=$model GW_KEY=$key BENCH_SENT_FILE="$OUT/sent" wrk -t"$threads" -c"$conns" -d"$DURATION" --latency \
    -s bench/chat.lua "$url/v1/chat/completions" > "$file"
  end_row
  non2xx=$(awk '/Non-2xx/ {print $5}' "$file")
  result_row "$scenario" "$target" "$conns" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$file")" \
    "$(to_ms "$(awk '/^ +50%/ {print $2}' "$file")")" "$(to_ms "$(awk '/^ +90%/ {print $2}' "$file")")" \
    "$(to_ms "$(awk '/^ +99%/ {print $2}' "$file")")" "$(cat "$OUT/sent")" \
    "$([ "$target" = direct ] && echo "${non2xx:-0} non-2xx" || { [ -z "$non2xx" ] || echo "$non2xx non-2xx"; })"
}

# stream_row TARGET CONNS URL KEY -> table row from bench/LoadGen (times to the first content chunk; the end of the stream
# is shown for direct rows).
stream_row() {
  local target=$1 conns=$2 url=$3 key=$4 sent failed rps t50 t90 t99 e50
  begin_row
  read -r sent _ failed rps t50 t90 t99 e50 _ < <(dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll \
    "$url/v1/chat/completions" "$key" bench-50 "$conns" "$SECONDS_PER_ROW")
  end_row
  result_row "stream 50 ms TTFT" "$target" "$conns" "$rps" "$t50" "$t90" "$t99" "$sent" \
    "$([ "$target" = direct ] && echo "$failed failed (end p50 $e50 ms)" || { [ "$failed" = 0 ] || echo "$failed failed"; })"
}

emit() { printf '| %-17s | %-7s | %5s | %7s | %7s | %7s | %7s | %-15s | %6s | %8s | %-13s | %s |\n' "$@"; }
header() {
  echo "| scenario          | target  | conns |   req/s | p50 ms  | p90 ms  | p99 ms  | added p50 / p99 | CPU ms | alloc KB | RSS (peak) MB | rows stored / sent |"
  echo "|-------------------|---------|-------|---------|---------|---------|---------|-----------------|--------|----------|---------------|--------------------|"
}

# The runtime's own view of its memory, from /metrics (the System.Runtime meter).
gc_line() {
  curl -fsS "http://127.0.0.1:$GW_PORT/metrics" | awk '
    /^dotnet_gc_last_collection_heap_size_bytes/ {heap += $NF}
    /^dotnet_gc_last_collection_memory_committed_size_bytes/ {committed = $NF}
    /^dotnet_process_memory_working_set_bytes/ {ws = $NF}
    /^dotnet_gc_heap_total_allocated_bytes/ {allocated = $NF}
    END {printf "GC heap %.0f MB, GC committed %.0f MB, working set %.0f MB, allocated since start %.0f MB\n",
      heap / 1048576, committed / 1048576, ws / 1048576, allocated / 1048576}'
}

# Every path the rows take, long enough for tiered compilation to settle: right after start the JIT's background
# thread is most of the gateway's CPU (seen in the profile), which is start-up, not the cost of a request.
warm_up() {
  echo "Warming up" >&2
  BENCH_MODEL=bench GW_KEY=$GW_KEY wrk -t2 -c32 -d10s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > /dev/null
  BENCH_MODEL=bench-50 GW_KEY=$GW_KEY wrk -t2 -c32 -d5s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > /dev/null
  dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$GW_KEY" bench-50 32 8 > /dev/null
  wrk -t2 -c32 -d2s -s bench/chat.lua "http://127.0.0.1:$UP0_PORT/v1/chat/completions" > /dev/null
}

case "$MODE" in
table)
  warm_up
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), .NET $(dotnet --version), $DURATION per row"
  echo "CPU ms = gateway process user+sys time per request sent (from /proc); added = gateway minus direct at the same percentile."
  echo
  header
  for c in $CONNS; do
    [[ " $SCENARIOS " == *" chat0 "* ]] || break
    wrk_row "chat 0 ms" direct "$c" "http://127.0.0.1:$UP0_PORT" bench ""
    wrk_row "chat 0 ms" gateway "$c" "http://127.0.0.1:$GW_PORT" bench "$GW_KEY"
  done
  for c in $CONNS; do
    [[ " $SCENARIOS " == *" chat50 "* ]] || break
    wrk_row "chat 50 ms" direct "$c" "http://127.0.0.1:$UP50_PORT" bench ""
    wrk_row "chat 50 ms" gateway "$c" "http://127.0.0.1:$GW_PORT" bench-50 "$GW_KEY"
  done
  for c in 1 32; do
    [[ " $SCENARIOS " == *" stream "* ]] || break
    stream_row direct "$c" "http://127.0.0.1:$UP50_PORT" ""
    stream_row gateway "$c" "http://127.0.0.1:$GW_PORT" "$GW_KEY"
  done
  if [ "$GROW_ROWS" -gt 0 ]; then
    have=$(rows)
    echo
    echo "Growing usage_events from $have to $GROW_ROWS rows (today's partition), then the 32-connection row again:"
    # bench/Micro's filler (made-up keys, so the bench key's budget reads are unaffected), all in today's partition, where
    # the gateway's rows go; it vacuums and checkpoints after, so their writes do not share the CPU with the row.
    dotnet bench/Micro/bin/Release/net10.0/Micro.dll grow --rows "$GROW_ROWS" --days 0
    echo "usage_events now $(rows) rows"
    echo
    header
    wrk_row "chat 0 ms" direct 32 "http://127.0.0.1:$UP0_PORT" bench ""
    wrk_row "chat 0 ms" gateway 32 "http://127.0.0.1:$GW_PORT" bench "$GW_KEY"
  fi
  ;;
serve)
  echo "Gateway http://127.0.0.1:$GW_PORT (pid $GW_PID, key $GW_KEY), upstreams :$UP0_PORT (0 ms) and :$UP50_PORT (50 ms), $ConnectionStrings__Gateway"
  wait "$GW_PID"
  ;;
quick)
  warm_up
  header
  wrk_row "chat 0 ms" direct 32 "http://127.0.0.1:$UP0_PORT" bench ""
  wrk_row "chat 0 ms" gateway 32 "http://127.0.0.1:$GW_PORT" bench "$GW_KEY"
  gc_line
  ;;
memory)
  # Start-up: ready, then 5 s of nothing (the background start-up work done), before any request.
  sleep 5
  idle=$(rss_mb VmRSS)
  warm_up
  header
  for scenario in "chat 0 ms|$UP0_PORT|bench" "chat 50 ms|$UP50_PORT|bench-50"; do
    IFS='|' read -r name port model <<< "$scenario"
    wrk_row "$name" direct 128 "http://127.0.0.1:$port" bench ""
    wrk_row "$name" gateway 128 "http://127.0.0.1:$GW_PORT" "$model" "$GW_KEY"
  done
  sleep 10
  echo "RSS: $idle MB after start-up, $(rss_mb VmHWM) MB peak, $(rss_mb VmRSS) MB 10 s after the load"
  gc_line
  ;;
soak)
  warm_up
  soak_seconds=${BENCH_SOAK_SECONDS:-600}
  BENCH_MODEL=bench GW_KEY=$GW_KEY wrk -t2 -c32 -d10s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$OUT/soak-saturation.txt"
  saturated=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$OUT/soak-saturation.txt")
  # Each connection pauses 4 ms between requests. How many requests a paced connection makes per second depends on
  # timer granularity and latency, so a 5 s probe with 16 connections measures it; then enough connections for half
  # the saturated rate.
  BENCH_MODEL=bench GW_KEY=$GW_KEY BENCH_DELAY_MS=4 wrk -t2 -c16 -d5s -s bench/chat.lua \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$OUT/soak-probe.txt"
  per_conn=$(awk '/Requests\/sec/ {printf "%.0f", $2 / 16}' "$OUT/soak-probe.txt")
  soak_conns=$(( saturated / 2 / per_conn )); [ "$soak_conns" -ge 1 ] || soak_conns=1
  echo "Saturated: $saturated req/s. Soak: $soak_conns connections of ~$per_conn req/s each (4 ms pause), ${soak_seconds} s."
  before=$(settled_rows)
  BENCH_MODEL=bench GW_KEY=$GW_KEY BENCH_DELAY_MS=4 BENCH_SENT_FILE="$OUT/sent" wrk -t2 -c"$soak_conns" -d"${soak_seconds}s" --latency \
    -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$OUT/soak-wrk.txt" &
  WRK_PID=$!
  echo "| t s | req/s (last 10 s) | RSS MB | GC heap MB | GC committed MB | gen2 GCs |"
  echo "|-----|-------------------|--------|------------|-----------------|----------|"
  last=$(rows); t=0
  while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 10; t=$((t + 10))
    now=$(rows)
    metrics=$(curl -fsS "http://127.0.0.1:$GW_PORT/metrics" || true)
    heap=$(echo "$metrics" | awk '/^dotnet_gc_last_collection_heap_size_bytes/ {s += $NF} END {printf "%.0f", s / 1048576}')
    committed=$(echo "$metrics" | awk '/^dotnet_gc_last_collection_memory_committed_size_bytes/ {printf "%.0f", $NF / 1048576}')
    gen2=$(echo "$metrics" | awk '/^dotnet_gc_collections_total.*gen2/ {print $NF}')
    printf '| %3s | %17s | %6s | %10s | %15s | %8s |\n' "$t" "$(( (now - last) / 10 ))" "$(rss_mb VmRSS)" "$heap" "$committed" "${gen2:-?}"
    last=$now
  done
  wait "$WRK_PID" || true
  sent=$(cat "$OUT/sent")
  echo
  echo "Soak: $(awk '/Requests\/sec/ {print $2}' "$OUT/soak-wrk.txt") req/s, p99 $(awk '/^ +99%/ {print $2}' "$OUT/soak-wrk.txt"),"\
    "rows stored $(stored_since "$sent" "$before") for $sent sent, peak RSS $(rss_mb VmHWM) MB"
  ;;
profile)
  command -v perf >/dev/null 2>&1 || { echo "Installing perf"; apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
  warm_up
  BENCH_MODEL=bench GW_KEY=$GW_KEY wrk -t2 -c32 -d25s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$OUT/profile-wrk.txt" &
  WRK_PID=$!
  sleep 3
  # CPU samples (software clock: works where hardware counters are not exposed), with call stacks.
  perf record -e cpu-clock -F 999 -g -p "$GW_PID" -o "$OUT/perf.data" -- sleep 15 2> /dev/null
  wait "$WRK_PID" || true
  echo "Under load: $(awk '/Requests\/sec/ {print $2}' "$OUT/profile-wrk.txt") req/s. Samples: $OUT/perf.data"
  echo "Top symbols by self time:"
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2> /dev/null | grep -v '^#' | grep '%' | head -60
  echo "Top symbols including callees:"
  perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2> /dev/null | grep -v '^#' | grep '%' | head -80
  ;;
*) echo "usage: bench/run.sh [table|quick|memory|serve|soak|profile]" >&2; exit 2 ;;
esac
