#!/usr/bin/env bash
# Throw-away PostgreSQL cluster on 127.0.0.1 for tests and CI.
#
#   pg-cluster.sh start DIR   initdb DIR/data if needed, start it, print its URL
#                             (the only thing on stdout). A restart of the same DIR
#                             reuses its port and data.
#   pg-cluster.sh stop DIR    fast shutdown (data kept; rm -rf DIR to discard)
#   pg-cluster.sh url DIR     print the URL of DIR's cluster
#
# As root the server runs as the `postgres` OS user, since initdb refuses root.
# Auth is trust, on 127.0.0.1 and DIR's Unix socket only.
set -euo pipefail

usage() { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
data=$dir/data

find_bindir() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    # Newest installed major version wins.
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
        echo "pg-cluster: PostgreSQL server binaries not found (run scripts/ensure-postgres.sh)" >&2
        exit 1
    fi
    echo "$found"
}

# Runs a command as the cluster's owner, from DIR so a root-only cwd does not matter.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

pick_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() { echo "postgresql+psycopg://postgres@127.0.0.1:$(cat "$dir/port")/postgres"; }

init_cluster() {
    local bin=$1
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "pg-cluster: no 'postgres' OS user to run the server as" >&2; exit 1; }
        chown postgres: "$dir"
        chmod 700 "$dir"
    fi
    if ! as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    cat >"$data/pg_hba.conf" <<'HBA'
local all all trust
host  all all 127.0.0.1/32 trust
HBA
    # Throw-away data: durability settings off for speed.
    cat >>"$data/postgresql.conf" <<'CONF'
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
    if [ "$(id -u)" = 0 ]; then chown postgres: "$data/pg_hba.conf"; fi
}

start() {
    local bin port attempt
    bin=$(find_bindir)
    [ -f "$data/PG_VERSION" ] || init_cluster "$bin"
    if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        url
        return
    fi
    for attempt in 1 2 3 4 5; do
        # A restart keeps its port so clients' URLs stay valid.
        [ -s "$dir/port" ] || pick_port >"$dir/port"
        port=$(cat "$dir/port")
        if as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
                -o "-h 127.0.0.1 -p $port -k '$dir'" start >/dev/null; then
            url
            return
        fi
        echo "pg-cluster: start on port $port failed (attempt $attempt):" >&2
        tail -n 5 "$dir/server.log" >&2 || true
        # Only a port never handed out may be replaced; a known one must come back.
        [ -f "$dir/url-issued" ] && exit 1
        rm -f "$dir/port"
    done
    exit 1
}

case $cmd in
    start)
        start
        touch "$dir/url-issued"
        ;;
    stop)
        [ -f "$data/postmaster.pid" ] || exit 0
        as_owner "$(find_bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null
        ;;
    url)
        [ -s "$dir/port" ] || { echo "pg-cluster: no cluster in $dir" >&2; exit 1; }
        url
        ;;
    *) usage ;;
esac
