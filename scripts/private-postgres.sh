#!/usr/bin/env bash
# A private PostgreSQL cluster from the machine's binaries, for run.sh and bench/run.sh.
#   private-postgres.sh start DIR PORT   -> creates the cluster in DIR on first use (superuser password in
#                                           DIR.password), starts it on 127.0.0.1:PORT, creates database
#                                           "gateway", prints its connection string
#   private-postgres.sh stop DIR
# PostgreSQL refuses to run as root, so as root the cluster runs as the postgres user.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data directory}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "No PostgreSQL binaries under /usr/lib/postgresql (apt-get install -y postgresql)" >&2
  exit 3
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$dir"
  if ! runuser -u postgres -- test -w "$dir"; then
    echo "The postgres user cannot reach $dir (a parent folder is private); set GATEWAY_DATA_DIR to a folder under /tmp or /srv" >&2
    exit 4
  fi
fi

case "$cmd" in
  start)
    port=${3:?port}
    # Local socket: trust (only this user reaches the folder); TCP: password, kept beside the cluster.
    if [ ! -f "$dir/PG_VERSION" ]; then
      pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')
      (umask 077; printf '%s' "$pw" > "$dir.password"; printf '%s\n' "$pw" > "$dir/../.pgpw.tmp")
      [ "$(id -u)" = 0 ] && chown postgres "$dir/../.pgpw.tmp"
      as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$dir/../.pgpw.tmp" -E UTF8 --locale=C.UTF-8 >/dev/null
      rm -f "$dir/../.pgpw.tmp"
    fi
    export PGPASSWORD
    PGPASSWORD=$(cat "$dir.password" 2>/dev/null || true) # clusters made before passwords existed trust everyone
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${PG_EXTRA_OPTIONS:-}" start >/dev/null
    if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'gateway'" | grep -q 1; then
      "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE gateway" >/dev/null
    fi
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Password=$PGPASSWORD;Database=gateway"
    ;;
  stop)
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
