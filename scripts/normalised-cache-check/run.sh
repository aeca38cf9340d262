#!/usr/bin/env bash
# Starts `banyan dev` on a free loopback port and runs the SPA's contract operations through
# Apollo Client's InMemoryCache (pinned in package-lock.json) against it: check.mjs says what it
# checks. Fails when any check fails and when it cannot run (no node, no npm packages, no
# gateway): it never skips. Installs node and npm (Debian's packages) when absent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib/tools.sh"
need_node 18 # for its global fetch
(cd "$here" && npm ci --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
start_banyan_dev "$root" --event-rate 0
authorization=""
for _ in $(seq 1 50); do
  authorization=$(grep -o 'Authorization: Token [0-9a-f]*' "$BANYAN_DEV_OUT" | head -n 1 | sed 's/^Authorization: //' || true)
  [ -n "$authorization" ] && break
  sleep 0.2
done
if [ -z "$authorization" ]; then
  echo "banyan dev printed no Authorization header" >&2
  exit 1
fi
node "$here/check.mjs" "$BANYAN_URL" "$authorization" "$root/frontend-contract/persisted-operations.json"
