#!/usr/bin/env bash
# Starts `banyan dev` on a free loopback port, runs the graphql-http server audits against it,
# and stops it. Needs node and npm (the npm registry); exits 0 with a notice when they are absent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "graphql-http audit: node/npm not found, not run"
  exit 0
fi
(cd "$here" && npm install --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
start_banyan_dev "$root" --event-rate 0
node "$here/audit.mjs" "$BANYAN_URL"
