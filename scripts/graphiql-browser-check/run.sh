#!/usr/bin/env bash
# Starts `banyan dev` (events at 200/s) on a free loopback port, runs check.mjs against its
# GraphiQL, and stops it. Needs node, npm and Chromium (Debian's `chromium` package).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
(cd "$here" && npm install --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
start_banyan_dev "$root" --event-rate 200
node "$here/check.mjs" "$BANYAN_URL" "${1:-$here/graphiql.png}"
