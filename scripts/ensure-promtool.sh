#!/usr/bin/env bash
# Make `promtool` available for the alert-rule tests (tests/test_alerts.py).
# Best effort: installs Debian's prometheus package (which ships promtool) when
# root with apt-get, otherwise warns (the tests then skip locally, and fail in
# CI) and still exits 0. Never starts a Prometheus server: see below.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-promtool: installing Debian's prometheus (for promtool)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package's maintainer scripts would start the prometheus service; only
    # promtool is wanted. A policy-rc.d answering 101 ("action forbidden") makes
    # invoke-rc.d and deb-systemd-invoke skip the start. Docker images usually
    # ship one already; a temporary one is put in place (and removed) otherwise.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        && command -v promtool >/dev/null 2>&1; then
        # Nor at the next boot, where systemd runs the host.
        if [ -d /run/systemd/system ]; then
            systemctl disable prometheus.service >/dev/null 2>&1 || true
        fi
        exit 0
    fi
    echo "ensure-promtool: WARNING: installing prometheus failed; the alert-rule tests will be skipped." >&2
    exit 0
fi

echo "ensure-promtool: WARNING: promtool not found and cannot install it (need root and apt-get);" \
     "the alert-rule tests will be skipped." >&2
exit 0
