#!/usr/bin/env bash
# Starts `banyan dev` on a free loopback port, runs check.mjs against its migration admin page
# (/admin/migration) in headless Chromium with real traffic (it rewrites the routing table
# `banyan dev` printed, sends GraphQL requests with the dev token and turns the devstack's dual
# write off), and stops it. Installs what it needs when absent:
# node and npm (Debian's packages), Debian's chromium (or set CHROMIUM to a browser), and the npm
# packages of package-lock.json. Fails, never skips, when any of them cannot be had.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib/tools.sh"
need_node 20 # playwright-core's minimum
need_chromium
(cd "$here" && npm ci --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
start_banyan_dev "$root"
node "$here/check.mjs" "$BANYAN_DEV_OUT" "${1:-$here/admin.png}"
