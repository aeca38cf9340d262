#!/usr/bin/env bash
# Starts `banyan dev` (events at 200/s) on a free loopback port, from the repository's root (its
# GraphiQL opens the contract's operations as tabs), runs check.mjs against its GraphiQL in
# headless Chromium with the network blocked, and stops it. Installs what it needs when absent: node and npm
# (Debian's packages), Debian's chromium (or set CHROMIUM to a browser), and the npm packages of
# package-lock.json. Fails, never skips, when any of them cannot be had.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib/tools.sh"
need_node 20 # playwright-core's minimum
need_chromium
(cd "$here" && npm ci --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
cd "$root"
start_banyan_dev "$root" --event-rate 200
node "$here/check.mjs" "$BANYAN_URL" "${1:-$here/graphiql.png}"
