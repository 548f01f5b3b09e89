#!/usr/bin/env bash
# Starts the gateway in the foreground: PostgreSQL (unless ConnectionStrings__Gateway is set), migrations,
# seed (demo key, mock model, first admin user), the API on http://127.0.0.1:${GATEWAY_API_PORT:-8080} and the
# admin app on http://127.0.0.1:${GATEWAY_ADMIN_PORT:-8081}. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
API_PORT=${GATEWAY_API_PORT:-8080}
ADMIN_PORT=${GATEWAY_ADMIN_PORT:-8081}
PG_PORT=${GATEWAY_PG_PORT:-55432}
DATA=${GATEWAY_DATA_DIR:-$ROOT/data}
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

PG_STARTED=""
QUIET=""
COMPOSE_STARTED=""
API_PID=""
ADMIN_PID=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$ADMIN_PID" ] && kill -0 "$ADMIN_PID" 2>/dev/null; then
    kill -TERM "$ADMIN_PID" 2>/dev/null || true
    wait "$ADMIN_PID" 2>/dev/null || true
  fi
  if [ -n "$API_PID" ] && kill -0 "$API_PID" 2>/dev/null; then
    kill -TERM "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_STARTED" ]; then
    if [ -z "${QUIET:-}" ]; then echo "Stopping PostgreSQL"; fi
    scripts/private-postgres.sh stop "$DATA/pg" || true
  fi
  if [ -n "$COMPOSE_STARTED" ]; then
    echo "Stopping the compose database"
    docker compose stop postgres >/dev/null || true
  fi
}
trap cleanup INT TERM EXIT

# ./run.sh add-user EMAIL ROLE: one more admin app user (Admin or Finance) in this install's database, whether or not
# ./run.sh is running; prints one line with the generated password.
if [ "${1:-}" = "add-user" ]; then
  if [ $# -ne 3 ]; then echo "usage: ./run.sh add-user EMAIL Admin|Finance" >&2; exit 2; fi
  if [ -z "${ConnectionStrings__Gateway:-}" ]; then
    if [ ! -f "$DATA/pg/PG_VERSION" ]; then
      echo "No database in $DATA/pg yet: start ./run.sh once first (or set ConnectionStrings__Gateway)" >&2; exit 1
    fi
    if [ -f "$DATA/pg/postmaster.pid" ]; then
      # Running (./run.sh is up): its port is the pid file's fourth line.
      ConnectionStrings__Gateway="Host=127.0.0.1;Port=$(sed -n 4p "$DATA/pg/postmaster.pid");Username=postgres;Password=$(cat "$DATA/pg.password");Database=gateway"
    else
      ConnectionStrings__Gateway=$(scripts/private-postgres.sh start "$DATA/pg" "$PG_PORT")
      PG_STARTED=1
    fi
    export ConnectionStrings__Gateway
  fi
  ADMIN_DLL=Gateway.Admin/bin/Release/net10.0/Gateway.Admin.dll
  if [ ! -f "$ADMIN_DLL" ] && ! dotnet build Gateway.Admin/Gateway.Admin.csproj -c Release --nologo -v quiet -clp:NoSummary > "$DATA/build.log" 2>&1; then
    cat "$DATA/build.log" >&2; exit 1
  fi
  QUIET=1
  status=0
  dotnet "$ADMIN_DLL" add-user "$2" "$3" --contentRoot "$ROOT/Gateway.Admin/bin/Release/net10.0" || status=$?
  exit "$status"
fi

if [ -z "${ConnectionStrings__Gateway:-}" ]; then
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    ConnectionStrings__Gateway=$(scripts/private-postgres.sh start "$DATA/pg" "$PG_PORT")
    PG_STARTED=1
    echo "PostgreSQL on 127.0.0.1:$PG_PORT (private cluster in $DATA/pg)"
  elif docker info >/dev/null 2>&1; then
    echo "No local PostgreSQL binaries; starting the compose database"
    docker compose up -d --wait postgres
    COMPOSE_STARTED=1
    ConnectionStrings__Gateway="Host=127.0.0.1;Port=5432;Username=gateway;Password=gateway;Database=gateway"
  else
    echo "Need PostgreSQL: install it (apt-get install -y postgresql), run Docker, or set ConnectionStrings__Gateway" >&2
    exit 1
  fi
  export ConnectionStrings__Gateway
fi

# The master key is printed once, when it is made; later starts say where it is (a terminal's scrollback, a CI log or a
# screen share should not collect a copy on every start).
if [ -z "${Gateway__MasterKey:-}" ]; then
  if [ ! -s "$DATA/master-key" ]; then
    (umask 077; printf 'gwm-%s' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" > "$DATA/master-key")
    echo "Master key: $(cat "$DATA/master-key") (the admin API's bearer token, printed only now; kept in $DATA/master-key)"
  else
    echo "Master key kept in $DATA/master-key (the admin API's bearer token; printed only when it was made)"
  fi
  Gateway__MasterKey=$(cat "$DATA/master-key")
  export Gateway__MasterKey
fi

echo "Building (Release)"
if ! { dotnet build Gateway.Api/Gateway.Api.csproj -c Release --nologo -v quiet -clp:NoSummary \
       && dotnet build Gateway.Admin/Gateway.Admin.csproj -c Release --nologo -v quiet -clp:NoSummary; } > "$DATA/build.log" 2>&1; then
  cat "$DATA/build.log" >&2
  echo "Build failed (log above, also in $DATA/build.log)" >&2
  exit 1
fi

# The development demo key (mock models only, small daily cap, rate limit, expiry): the API issues it once per database.
export Gateway__SeedDemoKey=${Gateway__SeedDemoKey:-true}
export Gateway__DemoKeyFile=${Gateway__DemoKeyFile:-$DATA/demo-key}
DEMO_KEY_BEFORE=$(cat "$Gateway__DemoKeyFile" 2>/dev/null || true)
export Gateway__SeedFile=${Gateway__SeedFile:-$ROOT/gateway.json}
export Gateway__DataProtectionKeysDirectory=${Gateway__DataProtectionKeysDirectory:-$DATA/keys}
export Gateway__Metering__JournalDirectory=${Gateway__Metering__JournalDirectory:-$DATA/usage-journal}
export ASPNETCORE_URLS="http://127.0.0.1:$API_PORT"
dotnet Gateway.Api/bin/Release/net10.0/Gateway.Api.dll --contentRoot "$ROOT/Gateway.Api/bin/Release/net10.0" &
API_PID=$!
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$API_PORT/health/ready" >/dev/null 2>&1; then
    echo "Gateway API on http://127.0.0.1:$API_PORT"
    # Not issued now (the API prints a new one): say where the earlier one is.
    if [ "${Gateway__SeedDemoKey,,}" = "true" ] && [ -n "$DEMO_KEY_BEFORE" ] && [ "$DEMO_KEY_BEFORE" = "$(cat "$Gateway__DemoKeyFile" 2>/dev/null)" ]; then
      echo "Demo key kept in $Gateway__DemoKeyFile (issued once per database, printed only then)"
    fi
    break
  fi
  kill -0 "$API_PID" 2>/dev/null || break
  sleep 0.5
done

# The admin app, once the API has migrated the database. It prints the first admin's password when it creates it.
ASPNETCORE_URLS="http://127.0.0.1:$ADMIN_PORT" Gateway__SeedFile="" Gateway__SeedDemoKey=false \
  dotnet Gateway.Admin/bin/Release/net10.0/Gateway.Admin.dll --contentRoot "$ROOT/Gateway.Admin/bin/Release/net10.0" &
ADMIN_PID=$!
for _ in $(seq 1 120); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/account/login" 2>/dev/null; then
    echo "Admin app on http://127.0.0.1:$ADMIN_PORT (Ctrl-C stops everything)"
    break
  fi
  kill -0 "$ADMIN_PID" 2>/dev/null || break
  sleep 0.5
done
wait -n "$API_PID" "$ADMIN_PID"
