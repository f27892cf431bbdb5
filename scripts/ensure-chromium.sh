#!/usr/bin/env bash
# Make Debian's chromium available for the dashboard's browser tests (Playwright drives it
# through executable_path; `playwright install` is never used: it downloads its own build).
# Best effort like ensure-postgres.sh: installs with apt-get when root, otherwise warns (the
# browser tests then skip locally; in CI they fail instead) and still exits 0.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq chromium >/dev/null && command -v chromium >/dev/null 2>&1; then
        exit 0
    fi
    echo "ensure-chromium: WARNING: installing chromium failed; browser tests will be skipped." >&2
    exit 0
fi

echo "ensure-chromium: WARNING: chromium not found and cannot install it (need root and" \
     "apt-get); browser tests will be skipped." >&2
exit 0
