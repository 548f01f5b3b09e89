#!/usr/bin/env bash
# The performance suite: fast fake OpenAI upstreams (0 ms and 50 ms), a private PostgreSQL, the gateway in Release with
# auth, budgets and metering to PostgreSQL on, and wrk (plus bench/LoadGen for streamed time to first token).
#   bench/run.sh            the scenario table, then usage_events grown to BENCH_GROW_ROWS and the 32-connection row again
#   bench/run.sh soak       BENCH_SOAK_SECONDS (600) at about half the saturated rate; RSS and GC heap every 10 s, CPU per request
#   bench/run.sh quick      only the saturated row (0 ms upstream, 32 connections): for trying a change
#   bench/run.sh memory     RSS after start-up (before any request), the warm-up's peak, the 128-connection rows (their own peak RSS), RSS 10 s after
#   bench/run.sh serve      start everything, print the URLs and key, and wait (Ctrl-C stops it): for trying by hand
#   bench/run.sh profile    15 s of CPU samples of the gateway at 32 connections (perf, with the JIT's symbol map), top symbols printed
#   bench/run.sh scale      only the streaming-at-scale rows (500 and 2,000 concurrent streams; see scale_rows)
# Columns: CPU ms and alloc KB are the gateway's CPU time (user+sys, /proc) and managed allocations per request sent.
# Portkey's open-source gateway (bench/peers/portkey, pinned by its package-lock.json) is a row after each gateway row of the
# chat and stream scenarios, of quick and of scale when bench/peers/portkey/node_modules exists; BENCH_PORTKEY=1 installs it
# (npm ci) first, BENCH_PORTKEY=0 leaves it out. Its CPU and RSS are the node process's, read the same way.
# A `relay` row (bench/Relay: YARP's forwarder on the same Kestrel and SocketsHttpHandler, same runtime settings, no gateway
# work at all) follows each direct row: the floor any gateway on these stacks starts from. BENCH_RELAY=0 leaves it out.
# Settings: BENCH_DURATION (10s per row), BENCH_GROW_ROWS (10000000; 0 skips), BENCH_CONNS ("1 32 128"),
# BENCH_SCENARIOS ("chat0 chat50 stream scale": which groups of rows the table runs), BENCH_SCALE_STREAMS ("500 2000"),
# BENCH_GATEWAY_ENV (extra environment for the gateway process only, e.g. "DOTNET_gcServer=0"), BENCH_GATEWAY_DIR (the gateway's
# folder: by default bench/out/gateway, published ReadyToRun as the default image ships it; Gateway.Api/bin/Release/net10.0 for the plain build),
# BENCH_UPSTREAM_JITTER_MS (0: up to this many ms added at random to the whole-answer 50 ms upstream's delay, for the tail study),
# BENCH_GATEWAY_BUILD (r2r: ReadyToRun on the .NET runtime, as the default image ships it; aot: Native AOT, as the aot image does, published to bench/out/gateway-aot;
# trim: ReadyToRun, self-contained and trimmed, runtime included, published to bench/out/gateway-trim).
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
SCENARIOS=${BENCH_SCENARIOS:-chat0 chat50 stream scale}
SCALE_STREAMS=${BENCH_SCALE_STREAMS:-500 2000}
UP0_PORT=${BENCH_UPSTREAM_PORT:-18091}
UP50_PORT=$((UP0_PORT + 1))
PK_PORT=$((UP0_PORT + 2))
CHAT50_PORT=$((UP0_PORT + 3))
# The relay listens on one port per upstream (it forwards by the port a request came in on).
RL0_PORT=$((UP0_PORT + 4))
RL50_PORT=$((UP0_PORT + 5))
RLC50_PORT=$((UP0_PORT + 6))
GW_PORT=${BENCH_GATEWAY_PORT:-18090}
GW_BUILD=${BENCH_GATEWAY_BUILD:-r2r}
case "$GW_BUILD" in
  aot|trim) GW_DIR=${BENCH_GATEWAY_DIR:-$OUT/gateway-$GW_BUILD} ;;
  *) GW_DIR=${BENCH_GATEWAY_DIR:-$OUT/gateway} ;;
esac
PK_DIR=$ROOT/bench/peers/portkey
PG_PORT=${BENCH_PG_PORT:-55491}
TICKS=$(getconf CLK_TCK)
mkdir -p "$OUT"

for tool in wrk bc; do
  command -v $tool >/dev/null 2>&1 || { echo "Installing $tool"; apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
# One socket per stream on each side of every hop: 2,000 streams through the gateway hold 4,000 descriptors in it.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Portkey's gateway: installed from the committed lock file (its one install script runs patch-package, which has no
# patches to apply in the published package, so scripts are skipped).
if [ "${BENCH_PORTKEY:-}" = 1 ] && [ ! -d "$PK_DIR/node_modules" ]; then
  command -v npm >/dev/null 2>&1 || { echo "BENCH_PORTKEY=1 needs node (18.14.1 or later) and npm" >&2; exit 3; }
  echo "Installing Portkey's gateway (npm ci in bench/peers/portkey)"
  (cd "$PK_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# Only the modes with Portkey rows (and serve) start it.
PORTKEY=0
if [[ " table quick scale serve " == *" $MODE "* ]] && [ "${BENCH_PORTKEY:-}" != 0 ] && [ -d "$PK_DIR/node_modules" ]; then PORTKEY=1; fi
RELAY=0
if [[ " table quick scale serve " == *" $MODE "* ]] && [ "${BENCH_RELAY:-}" != 0 ]; then RELAY=1; fi

PIDS=()
PK_PID=
RELAY_PID=
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/private-postgres.sh stop "$OUT/pg" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "Building (Release)"
for project in Gateway.Api/Gateway.Api.csproj bench/FakeUpstream/FakeUpstream.csproj bench/LoadGen/LoadGen.csproj bench/Micro/Micro.csproj bench/Relay/Relay.csproj; do
  dotnet build "$project" -c Release --nologo -v quiet -clp:NoSummary >/dev/null
done
# The gateway as the default image ships it: published ReadyToRun (Dockerfile).
dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -o "$OUT/gateway" --nologo -v quiet -clp:NoSummary >/dev/null
# The Native AOT build (README: "Native AOT"): one native executable, no JIT.
[ "$GW_BUILD" = aot ] && dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 -p:PublishAot=true -p:NuGetLockFilePath=obj/aot.packages.lock.json \
  -o "$OUT/gateway-aot" --nologo -v quiet -clp:NoSummary >/dev/null
# The trimmed build: the same ReadyToRun code with the runtime's and the packages' unused code trimmed away (fewer and smaller
# images mapped); the AOT build's trim settings apply to it too. Its own intermediate folder: the ReadyToRun step reuses
# the images it finds there, and a trimmed image in the image build's would fail to load on the shared runtime.
[ "$GW_BUILD" = trim ] && dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 --self-contained true -p:PublishTrimmed=true \
  -p:PublishReadyToRun=true -p:NuGetLockFilePath=obj/trim.packages.lock.json -p:IntermediateOutputPath=obj/trim/ \
  -o "$OUT/gateway-trim" --nologo -v quiet -clp:NoSummary >/dev/null

rm -rf "$OUT/pg" "$OUT/pg.password" "$OUT/journal"
export ConnectionStrings__Gateway
ConnectionStrings__Gateway=$(PG_EXTRA_OPTIONS="-c max_connections=200" scripts/private-postgres.sh start "$OUT/pg" "$PG_PORT")
PSQL=("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" "postgresql://postgres@127.0.0.1:$PG_PORT/gateway" -qtA)
export PGPASSWORD; PGPASSWORD=$(cat "$OUT/pg.password")

# The 50 ms upstream streams 16 content chunks 5 ms apart after its 50 ms time to first token (the stream rows). The chat 50 ms
# rows use one that answers whole after 50 ms, streamed or not: the gateway calls non-streaming requests streaming (to give
# them a first-token deadline), and an upstream whose stream took longer than its unstreamed answer would charge the gateway
# for the fake's pacing, not its own work (a real API's unstreamed answer takes as long as its stream).
FAKE_DELAY_MS=0 ASPNETCORE_URLS="http://127.0.0.1:$UP0_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)
FAKE_DELAY_MS=50 FAKE_CHUNK_MS=5 ASPNETCORE_URLS="http://127.0.0.1:$UP50_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)
FAKE_DELAY_MS=50 FAKE_JITTER_MS=${BENCH_UPSTREAM_JITTER_MS:-0} ASPNETCORE_URLS="http://127.0.0.1:$CHAT50_PORT" dotnet bench/FakeUpstream/bin/Release/net10.0/FakeUpstream.dll &
PIDS+=($!)
if [ "$RELAY" = 1 ]; then
  RELAY_ROUTES="$RL0_PORT=http://127.0.0.1:$UP0_PORT,$RL50_PORT=http://127.0.0.1:$UP50_PORT,$RLC50_PORT=http://127.0.0.1:$CHAT50_PORT" \
    dotnet bench/Relay/bin/Release/net10.0/Relay.dll > "$OUT/relay.log" 2>&1 &
  RELAY_PID=$!
  PIDS+=($RELAY_PID)
fi

cat > "$OUT/gateway.json" <<JSON
{ "providers": [ { "name": "upstream-0ms", "protocol": "openai", "base_url": "http://127.0.0.1:$UP0_PORT/v1" },
                 { "name": "upstream-50ms", "protocol": "openai", "base_url": "http://127.0.0.1:$UP50_PORT/v1" },
                 { "name": "upstream-50ms-whole", "protocol": "openai", "base_url": "http://127.0.0.1:$CHAT50_PORT/v1" } ],
  "models": [ { "alias": "bench", "provider": "upstream-0ms", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 },
              { "alias": "bench-50", "provider": "upstream-50ms", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 },
              { "alias": "bench-50-whole", "provider": "upstream-50ms-whole", "upstream_model": "gpt-4o-mini",
                "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075 } ] }
JSON
MASTER=bench-master-key
# profile: the JIT writes /tmp/perf-PID.map, so perf can name managed frames.
[ "$MODE" = profile ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
: > "$OUT/gateway.log"
# Starts the gateway (GW_PID) and waits until it and both upstreams answer; restart_gateway stops it first.
start_gateway() {
  env ${BENCH_GATEWAY_ENV:-} Gateway__MasterKey=$MASTER Gateway__SeedFile="$OUT/gateway.json" Gateway__DataProtectionKeysDirectory="$OUT/keys" \
    Gateway__Metering__JournalDirectory="$OUT/journal" Logging__LogLevel__Default=Warning ASPNETCORE_URLS="http://127.0.0.1:$GW_PORT" \
    $( [ -f "$GW_DIR/Gateway.Api.dll" ] && echo dotnet "$GW_DIR/Gateway.Api.dll" || echo "$GW_DIR/Gateway.Api" ) --contentRoot "$GW_DIR" >> "$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=($GW_PID)
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null 2>&1 \
      && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$UP0_PORT/v1/chat/completions" -d '{}' 2>/dev/null \
      && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$UP50_PORT/v1/chat/completions" -d '{}' 2>/dev/null \
      && curl -fsS -o /dev/null -X POST "http://127.0.0.1:$CHAT50_PORT/v1/chat/completions" -d '{}' 2>/dev/null \
      && { [ "$RELAY" = 0 ] || curl -fsS -o /dev/null -X POST "http://127.0.0.1:$RL0_PORT/v1/chat/completions" -d '{}' 2>/dev/null; } \
      && return
    sleep 0.5
  done
  echo "The gateway did not become ready (bench/out/gateway.log)" >&2; exit 1
}
restart_gateway() {
  local pid kept=()
  kill -TERM "$GW_PID"; wait "$GW_PID" || true
  for pid in "${PIDS[@]}"; do [ "$pid" = "$GW_PID" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
  start_gateway
}
start_gateway

# Portkey routes by headers: provider "openai" at a custom host (its docs' way to reach an OpenAI-compatible server; loopback
# is on its default list of trusted custom hosts); the bearer token is passed through to the fake, which ignores it.
pk_headers() { printf 'x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:%s/v1' "$1"; }
if [ "$PORTKEY" = 1 ]; then
  node "$PK_DIR/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$PK_PORT" --headless > "$OUT/portkey.log" 2>&1 &
  PK_PID=$!
  PIDS+=($PK_PID)
  for i in $(seq 1 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PK_PORT/v1/chat/completions" -H 'Content-Type: application/json' \
      -H 'Authorization: Bearer anything' -H "x-portkey-provider: openai" -H "x-portkey-custom-host: http://127.0.0.1:$UP0_PORT/v1" \
      -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' 2>/dev/null && break
    [ "$i" = 60 ] && { echo "Portkey did not answer through the fake upstream (bench/out/portkey.log)" >&2; exit 1; }
    sleep 0.5
  done
fi
# Budgets on: a daily budget (downgrade threshold) and a hard cap (leased slices), both far above what the run spends.
GW_KEY=$(curl -fsS "http://127.0.0.1:$GW_PORT/admin/keys" -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
  -d '{"name":"bench","daily_budget_usd":100000,"hard_cap_usd":1000000}' | sed -E 's/.*"key":"([^"]+)".*/\1/')

rows() { "${PSQL[@]}" -c "SELECT count(*) FROM usage_events"; }
# Bytes the gateway has allocated since it started (the runtime's own counter, from /metrics).
allocated() { curl -fsS "http://127.0.0.1:$GW_PORT/metrics" | awk '/^dotnet_gc_heap_total_allocated_bytes/ {print $NF}'; }
# CPU ticks (user+sys) and RSS fields of a process: the row's (ROW_PID) or, by default, the gateway's.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$GW_PID}/stat"; }
rss_mb() { awk -v f="$1" '$1 == f":" {printf "%.0f", $2 / 1024}' "/proc/${2:-$GW_PID}/status"; }
# The process a row's target runs in (none for direct rows: the upstream is the baseline).
row_pid() { case $1 in gateway*) echo "$GW_PID" ;; portkey) echo "$PK_PID" ;; relay) echo "$RELAY_PID" ;; *) echo "" ;; esac; }
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

declare -A DIRECT RPS CPU
# Before and after a row of TARGET: usage rows, the target process's CPU ticks and (gateway) its allocated bytes.
begin_row() {
  ROW_PID=$(row_pid "$1"); before=$(rows); alloc0=; ticks0=
  [ "$1" = direct ] || ticks0=$(cpu_ticks "$ROW_PID")
  [[ "$1" != gateway* ]] || alloc0=$(allocated)
}
end_row() {
  [ -z "$ticks0" ] || ticks1=$(cpu_ticks "$ROW_PID")
  [ -z "$alloc0" ] || alloc1=$(allocated)
}

# result_row SCENARIO TARGET CONNS REQ/S P50 P90 P99 SENT TROUBLE -> the table row. A direct row is kept for the added-latency
# column of the rows after it; a gateway row adds its CPU, allocations, RSS and rows stored (waiting for the writer); a relay or
# portkey row its CPU and RSS (they store nothing).
result_row() {
  local scenario=$1 target=$2 conns=$3 rps=$4 p50=$5 p90=$6 p99=$7 sent=$8 trouble=$9
  RPS[$scenario-$target-$conns]=$rps
  if [ "$target" = direct ]; then
    DIRECT[$scenario-$conns]="$p50 $p99"
    emit "$scenario" "$target" "$conns" "$rps" "$p50" "$p90" "$p99" "" "" "" "" "$trouble"
    return
  fi
  local stored cpu alloc= added d50 d99
  cpu=$(echo "scale=4; ($ticks1 - $ticks0) * 1000 / $TICKS / $sent" | bc)
  CPU[$scenario-$target-$conns]=$cpu
  read -r d50 d99 <<< "${DIRECT[$scenario-$conns]}"
  added=$(printf '+%.2f / +%.2f' "$(echo "$p50 - $d50" | bc)" "$(echo "$p99 - $d99" | bc)")
  if [ "$target" = gateway ]; then
    stored="$(stored_since "$sent" "$before") / $sent"
    alloc=$(echo "scale=1; ($alloc1 - $alloc0) / $sent / 1024" | bc)
  else
    stored="not metered, $sent sent"
  fi
  emit "$scenario" "$target" "$conns" "$rps" "$p50" "$p90" "$p99" "$added" "$cpu" "$alloc" \
    "$(rss_mb VmRSS "$ROW_PID") ($(rss_mb VmHWM "$ROW_PID"))" "$stored$([ -z "$trouble" ] || echo ", $trouble")"
}

# wrk_row SCENARIO TARGET CONNS URL MODEL KEY [HEADERS] -> table row from wrk (HEADERS: extra request headers, one a line).
wrk_row() {
  local scenario=$1 target=$2 conns=$3 url=$4 model=$5 key=$6 headers=${7:-} file="$OUT/wrk-$1-$2-$3.txt"
  local threads=$(( conns < 2 ? 1 : 2 )) non2xx
  begin_row "$target"
  BENCH_MODEL=$model GW_KEY=$key BENCH_HEADERS=$headers BENCH_SENT_FILE="$OUT/sent" wrk -t"$threads" -c"$conns" -d"$DURATION" \
    --latency -s bench/chat.lua "$url/v1/chat/completions" > "$file"
  end_row
  non2xx=$(awk '/Non-2xx/ {print $5}' "$file")
  result_row "$scenario" "$target" "$conns" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$file")" \
    "$(to_ms "$(awk '/^ +50%/ {print $2}' "$file")")" "$(to_ms "$(awk '/^ +90%/ {print $2}' "$file")")" \
    "$(to_ms "$(awk '/^ +99%/ {print $2}' "$file")")" "$(cat "$OUT/sent")" \
    "$([ "$target" = direct ] && echo "${non2xx:-0} non-2xx" || { [ -z "$non2xx" ] || echo "$non2xx non-2xx"; })"
}

# stream_row TARGET CONNS URL KEY [HEADERS] -> table row from bench/LoadGen (times to the first content chunk; the end of the
# stream is shown for direct rows).
stream_row() {
  local target=$1 conns=$2 url=$3 key=$4 headers=${5:-} sent failed rps t50 t90 t99 e50
  begin_row "$target"
  read -r sent _ failed rps t50 t90 t99 e50 _ < <(BENCH_HEADERS=$headers dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll \
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

# After the table: how the saturated row compares with Portkey's (when both ran).
ratio_line() {
  local g=${RPS[chat 0 ms-gateway-32]:-} p=${RPS[chat 0 ms-portkey-32]:-} gc=${CPU[chat 0 ms-gateway-32]:-} pc=${CPU[chat 0 ms-portkey-32]:-}
  [ -n "$g" ] && [ -n "$p" ] && [ "$p" -gt 0 ] || return 0
  printf 'saturated req/s at 32 conns (chat 0 ms): gateway / portkey = %.1f× (%s / %s); CPU ms per request: portkey / gateway = %.1f×\n' \
    "$(echo "scale=3; $g / $p" | bc)" "$g" "$p" "$(echo "scale=3; $pc / $gc" | bc)"
}
# After the table or quick: the gateway's CPU per request beside the bare relay's (when both ran): the difference is the
# gateway's own work (auth, parsing, routing, budgets, metering, failover), the rest the stacks both share.
relay_line() {
  local gc=${CPU[chat 0 ms-gateway-32]:-} rc=${CPU[chat 0 ms-relay-32]:-}
  [ -n "$gc" ] && [ -n "$rc" ] || return 0
  printf 'CPU ms per request at 32 conns (chat 0 ms): gateway %s, relay %s; the gateway'"'"'s own work %s ms (%.0f%% of its CPU)\n' \
    "$gc" "$rc" "$(echo "scale=4; $gc - $rc" | bc)" "$(echo "scale=1; ($gc - $rc) * 100 / $gc" | bc)"
}

# Streaming at scale: SCALE_STREAMS concurrent streams (closed loop, bench/LoadGen) against the 50 ms upstream (50 ms to the
# first token, 16 chunks 5 ms apart), straight to it, through the relay, through the warm gateway and through Portkey; then the largest count
# again against a fresh gateway (restarted, then 3 s of the same load before the timed row). Peak RSS is sampled every
# 0.2 s during the row (the process's peak since start would carry earlier rows' peaks).
scale_emit() { printf '| %7s | %-15s | %9s | %8s | %8s | %-21s | %8s | %9s | %8s | %s |\n' "$@"; }
scale_header() {
  echo "| streams | target          | streams/s | TTFT p50 | TTFT p99 | added p50 / p99       | end p50  | CPU ms/st | peak RSS | failed, rows stored / sent |"
  echo "|---------|-----------------|-----------|----------|----------|-----------------------|----------|-----------|----------|----------------------------|"
}
# Highest VmRSS of PID, in KB, written to FILE whenever it grows, until PID ends or this is stopped.
peak_rss_sampler() {
  local pid=$1 file=$2 peak=0 kb
  echo 0 > "$file"
  while kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ]; do
    if [ "$kb" -gt "$peak" ]; then peak=$kb; echo "$peak" > "$file"; fi
    sleep 0.2
  done
}
# scale_row TARGET STREAMS URL KEY [HEADERS]
scale_row() {
  local target=$1 n=$2 url=$3 key=$4 headers=${5:-} sent failed rps t50 t99 e50 sampler= cpu= peak= added= stored=
  # Rows still arriving from the load before (the fresh row's warm-up) must not count as this row's.
  [[ "$target" != gateway* ]] || settled_rows > /dev/null
  begin_row "$target"
  if [ -n "$ROW_PID" ]; then peak_rss_sampler "$ROW_PID" "$OUT/peak-rss" & sampler=$!; fi
  read -r sent _ failed rps t50 _ t99 e50 _ < <(BENCH_HEADERS=$headers dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll \
    "$url/v1/chat/completions" "$key" bench-50 "$n" "$SECONDS_PER_ROW")
  end_row
  RPS[scale-$target-$n]=$rps
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  if [ "$target" = direct ]; then
    DIRECT[scale-$n]="$t50 $t99"
  else
    local d50 d99
    read -r d50 d99 <<< "${DIRECT[scale-$n]}"
    added=$(printf '+%.2f / +%.2f' "$(echo "$t50 - $d50" | bc)" "$(echo "$t99 - $d99" | bc)")
    cpu=$(echo "scale=3; ($ticks1 - $ticks0) * 1000 / $TICKS / $sent" | bc)
    peak="$(( $(cat "$OUT/peak-rss") / 1024 )) MB"
  fi
  case $target in
    gateway*) stored="$(stored_since "$sent" "$before") / $sent" ;;
    portkey|relay) stored="not metered, $sent sent" ;;
    *) stored="$sent sent" ;;
  esac
  scale_emit "$n" "$target" "$rps" "$t50" "$t99" "$added" "$e50" "$cpu" "$peak" "$failed failed, $stored"
}
scale_rows() {
  local n fresh=0
  for n in $SCALE_STREAMS; do if [ "$n" -gt "$fresh" ]; then fresh=$n; fi; done
  echo
  echo "Streaming at scale: 50 ms to the first token, 16 chunks 5 ms apart; $SECONDS_PER_ROW s per row, the first second untimed."
  echo "CPU ms/st = the target process's user+sys time per stream sent; peak RSS sampled during the row; end = whole stream."
  echo
  scale_header
  for n in $SCALE_STREAMS; do
    scale_row direct "$n" "http://127.0.0.1:$UP50_PORT" ""
    [ "$RELAY" = 0 ] || scale_row relay "$n" "http://127.0.0.1:$RL50_PORT" ""
    scale_row gateway "$n" "http://127.0.0.1:$GW_PORT" "$GW_KEY"
    [ "$PORTKEY" = 0 ] || scale_row portkey "$n" "http://127.0.0.1:$PK_PORT" anything "$(pk_headers "$UP50_PORT")"
  done
  # 3 s of load: LoadGen's untimed first second and 2 more.
  restart_gateway
  dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$GW_KEY" bench-50 "$fresh" 2 > /dev/null
  scale_row "gateway (fresh)" "$fresh" "http://127.0.0.1:$GW_PORT" "$GW_KEY"
  # Each count's rates as shares: of direct, and the gateway's of the relay's (what the gateway's own work leaves of the floor).
  for n in $SCALE_STREAMS; do
    local d=${RPS[scale-direct-$n]:-} r=${RPS[scale-relay-$n]:-} g=${RPS[scale-gateway-$n]:-}
    [ -n "$d" ] && [ -n "$g" ] || continue
    if [ -n "$r" ]; then
      printf '%s streams: relay %.0f%% of direct; gateway %.0f%% of direct, %.0f%% of the relay\n' "$n" \
        "$(echo "scale=2; $r * 100 / $d" | bc)" "$(echo "scale=2; $g * 100 / $d" | bc)" "$(echo "scale=2; $g * 100 / $r" | bc)"
    else
      printf '%s streams: gateway %.0f%% of direct\n' "$n" "$(echo "scale=2; $g * 100 / $d" | bc)"
    fi
  done
}

# Every path the rows take, long enough for tiered compilation to settle: right after start the JIT's background
# thread is most of the gateway's CPU (seen in the profile), which is start-up, not the cost of a request.
warm_up() {
  echo "Warming up" >&2
  BENCH_MODEL=bench GW_KEY=$GW_KEY wrk -t2 -c32 -d10s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > /dev/null
  BENCH_MODEL=bench-50-whole GW_KEY=$GW_KEY wrk -t2 -c32 -d5s -s bench/chat.lua "http://127.0.0.1:$GW_PORT/v1/chat/completions" > /dev/null
  dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$GW_KEY" bench-50 32 8 > /dev/null
  wrk -t2 -c32 -d2s -s bench/chat.lua "http://127.0.0.1:$UP0_PORT/v1/chat/completions" > /dev/null
  if [ "$RELAY" = 1 ]; then
    # The relay's code is compiled as it runs too: its two paths (whole answers, streams).
    wrk -t2 -c32 -d5s -s bench/chat.lua "http://127.0.0.1:$RL0_PORT/v1/chat/completions" > /dev/null
    dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll "http://127.0.0.1:$RL50_PORT/v1/chat/completions" "" bench-50 32 4 > /dev/null
  fi
  [ "$PORTKEY" = 0 ] && return
  # Portkey's JavaScript is compiled as it runs too (V8): the same paths, shorter.
  BENCH_HEADERS=$(pk_headers "$UP0_PORT") GW_KEY=anything wrk -t2 -c32 -d5s -s bench/chat.lua "http://127.0.0.1:$PK_PORT/v1/chat/completions" > /dev/null
  BENCH_HEADERS=$(pk_headers "$CHAT50_PORT") GW_KEY=anything wrk -t2 -c32 -d3s -s bench/chat.lua "http://127.0.0.1:$PK_PORT/v1/chat/completions" > /dev/null
  BENCH_HEADERS=$(pk_headers "$UP50_PORT") dotnet bench/LoadGen/bin/Release/net10.0/LoadGen.dll "http://127.0.0.1:$PK_PORT/v1/chat/completions" anything bench-50 32 4 > /dev/null
}

case "$MODE" in
table)
  warm_up
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), .NET $(dotnet --version), $DURATION per row"
  echo "CPU ms = the target process's (gateway, relay or portkey) user+sys time per request sent (from /proc); added = target minus direct at the same percentile."
  echo
  header
  for c in $CONNS; do
    [[ " $SCENARIOS " == *" chat0 "* ]] || break
    wrk_row "chat 0 ms" direct "$c" "http://127.0.0.1:$UP0_PORT" bench ""
    [ "$RELAY" = 0 ] || wrk_row "chat 0 ms" relay "$c" "http://127.0.0.1:$RL0_PORT" bench ""
    wrk_row "chat 0 ms" gateway "$c" "http://127.0.0.1:$GW_PORT" bench "$GW_KEY"
    [ "$PORTKEY" = 0 ] || wrk_row "chat 0 ms" portkey "$c" "http://127.0.0.1:$PK_PORT" bench anything "$(pk_headers "$UP0_PORT")"
  done
  for c in $CONNS; do
    [[ " $SCENARIOS " == *" chat50 "* ]] || break
    wrk_row "chat 50 ms" direct "$c" "http://127.0.0.1:$CHAT50_PORT" bench ""
    [ "$RELAY" = 0 ] || wrk_row "chat 50 ms" relay "$c" "http://127.0.0.1:$RLC50_PORT" bench ""
    wrk_row "chat 50 ms" gateway "$c" "http://127.0.0.1:$GW_PORT" bench-50-whole "$GW_KEY"
    [ "$PORTKEY" = 0 ] || wrk_row "chat 50 ms" portkey "$c" "http://127.0.0.1:$PK_PORT" bench anything "$(pk_headers "$CHAT50_PORT")"
  done
  for c in 1 32; do
    [[ " $SCENARIOS " == *" stream "* ]] || break
    stream_row direct "$c" "http://127.0.0.1:$UP50_PORT" ""
    [ "$RELAY" = 0 ] || stream_row relay "$c" "http://127.0.0.1:$RL50_PORT" ""
    stream_row gateway "$c" "http://127.0.0.1:$GW_PORT" "$GW_KEY"
    [ "$PORTKEY" = 0 ] || stream_row portkey "$c" "http://127.0.0.1:$PK_PORT" anything "$(pk_headers "$UP50_PORT")"
  done
  ratio_line
  relay_line
  if [[ " $SCENARIOS " == *" scale "* ]]; then
    scale_rows
    # The fresh row restarted the gateway: warm it again for the growth row.
    [ "$GROW_ROWS" -le 0 ] || warm_up
  fi
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
  echo "Gateway http://127.0.0.1:$GW_PORT (pid $GW_PID, key $GW_KEY), upstreams :$UP0_PORT (0 ms), :$UP50_PORT (50 ms, streams paced) and :$CHAT50_PORT (50 ms, whole), $ConnectionStrings__Gateway"
  [ "$RELAY" = 0 ] || echo "Relay (pid $RELAY_PID) :$RL0_PORT, :$RL50_PORT and :$RLC50_PORT, to those three upstreams"
  [ "$PORTKEY" = 0 ] || echo "Portkey http://127.0.0.1:$PK_PORT (pid $PK_PID), headers x-portkey-provider: openai," \
    "x-portkey-custom-host: http://127.0.0.1:$UP0_PORT/v1 (or :$UP50_PORT), Authorization: Bearer anything"
  wait "$GW_PID"
  ;;
quick)
  warm_up
  header
  wrk_row "chat 0 ms" direct 32 "http://127.0.0.1:$UP0_PORT" bench ""
  [ "$RELAY" = 0 ] || wrk_row "chat 0 ms" relay 32 "http://127.0.0.1:$RL0_PORT" bench ""
  wrk_row "chat 0 ms" gateway 32 "http://127.0.0.1:$GW_PORT" bench "$GW_KEY"
  [ "$PORTKEY" = 0 ] || wrk_row "chat 0 ms" portkey 32 "http://127.0.0.1:$PK_PORT" bench anything "$(pk_headers "$UP0_PORT")"
  ratio_line
  relay_line
  gc_line
  ;;
scale)
  warm_up
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), .NET $(dotnet --version)"
  scale_rows
  ;;
memory)
  # Start-up: ready, then 5 s of nothing (the background start-up work done), before any request.
  sleep 5
  idle=$(rss_mb VmRSS)
  warm_up
  # The warm-up's streams have their own peak: read it, then restart the kernel's high-water mark from the RSS now
  # (clear_refs 5), so the peak below and the rows' "(peak)" column are those of the 128-connection rows alone.
  warm_peak=$(rss_mb VmHWM)
  echo 5 2>/dev/null > "/proc/$GW_PID/clear_refs" || echo "Could not restart the RSS high-water mark: the peak below includes the warm-up's" >&2
  header
  for scenario in "chat 0 ms|$UP0_PORT|bench" "chat 50 ms|$CHAT50_PORT|bench-50-whole"; do
    IFS='|' read -r name port model <<< "$scenario"
    wrk_row "$name" direct 128 "http://127.0.0.1:$port" bench ""
    wrk_row "$name" gateway 128 "http://127.0.0.1:$GW_PORT" "$model" "$GW_KEY"
  done
  sleep 10
  echo "RSS: $idle MB after start-up, $warm_peak MB peak through the warm-up, $(rss_mb VmHWM) MB peak under the 128-connection rows, $(rss_mb VmRSS) MB 10 s after them"
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
  ticks0=$(cpu_ticks)
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
  ticks1=$(cpu_ticks)
  sent=$(cat "$OUT/sent")
  echo
  # CPU per request at partial load: what a pod that is not saturated spends (the table's rows are saturated or latency-bound).
  echo "Soak: $(awk '/Requests\/sec/ {print $2}' "$OUT/soak-wrk.txt") req/s, p99 $(awk '/^ +99%/ {print $2}' "$OUT/soak-wrk.txt"),"\
    "CPU $(echo "scale=4; ($ticks1 - $ticks0) * 1000 / $TICKS / $sent" | bc) ms per request,"\
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
  # head closes the pipe early: perf's SIGPIPE would end the script under pipefail before the second report.
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2> /dev/null | grep -v '^#' | grep '%' | head -60 || true
  echo "Top symbols including callees:"
  perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2> /dev/null | grep -v '^#' | grep '%' | head -80 || true
  ;;
*) echo "usage: bench/run.sh [table|quick|memory|serve|soak|profile|scale]" >&2; exit 2 ;;
esac
