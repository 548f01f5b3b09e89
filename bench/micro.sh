#!/usr/bin/env bash
# Micro-benchmarks (bench/Micro): the hot path's key lookup, routing decision and budget check with BenchmarkDotNet
# (in-process, about a minute), then the metering writer alone into a private PostgreSQL, with usage_events empty and
# again after growing it. Prints the results and stops the cluster.
#   bench/micro.sh                           # writer at 0 rows and at 10,000,000 rows (the fill takes minutes)
#   BENCH_GROW_ROWS=1000000 bench/micro.sh   # a quicker check
# Also: BENCH_WRITER_ROWS (records per writer run, 500000), BENCH_PG_PORT (55499), BENCH_PG_DIR (/tmp/micro-pg: the
# postgres user must be able to reach it), extra BenchmarkDotNet options as arguments (e.g. --filter '*Routing*').
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/micro
GROW=${BENCH_GROW_ROWS:-10000000}
ROWS=${BENCH_WRITER_ROWS:-500000}
PG_PORT=${BENCH_PG_PORT:-55499}
PG_DIR=${BENCH_PG_DIR:-/tmp/micro-pg}
mkdir -p "$OUT"

cleanup() { scripts/private-postgres.sh stop "$PG_DIR" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "Building (Release)"
dotnet build bench/Micro/Micro.csproj -c Release --nologo -v quiet -clp:NoSummary >/dev/null
rm -rf "$PG_DIR" "$PG_DIR.password"
export ConnectionStrings__Gateway
ConnectionStrings__Gateway=$(scripts/private-postgres.sh start "$PG_DIR" "$PG_PORT")
micro() { dotnet bench/Micro/bin/Release/net10.0/Micro.dll "$@"; }

echo
echo "Hot path, $(nproc) cores, $(date -u +%Y-%m-%d) (BenchmarkDotNet; full log: $OUT/benchmarks.log)"
rm -rf "$OUT/bdn"
micro --artifacts "$OUT/bdn" "$@" > "$OUT/benchmarks.log" 2>&1 || { tail -n 40 "$OUT/benchmarks.log"; exit 1; }
# The table rows of BenchmarkDotNet's GitHub report (its quotes come HTML-escaped).
sed -n "/^|/{s/&#39;/'/g;p}" "$OUT"/bdn/results/*-report-github.md

echo
echo "Metering writer, usage_events empty"
micro writer --rows "$ROWS"
echo
echo "Metering writer, usage_events grown to $GROW rows"
micro writer --rows "$ROWS" --grow "$GROW"
