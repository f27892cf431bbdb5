#!/usr/bin/env bash
# Make PostgreSQL server binaries (initdb, pg_ctl) available for the test suite.
# Best effort: installs Debian's postgresql when root with apt-get, otherwise
# warns (the PostgreSQL tests then skip) and still exits 0.
set -euo pipefail

have_pg_binaries() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && return 0
    done
    return 1
}

if have_pg_binaries; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: installing Debian's postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq postgresql >/dev/null && have_pg_binaries; then
        exit 0
    fi
    echo "ensure-postgres: WARNING: installing postgresql failed; PostgreSQL tests will be skipped." >&2
    exit 0
fi

echo "ensure-postgres: WARNING: PostgreSQL server binaries not found and cannot install" \
     "them (need root and apt-get); PostgreSQL tests will be skipped." >&2
exit 0
