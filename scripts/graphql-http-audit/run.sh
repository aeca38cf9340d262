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
cargo build -q -p banyan-gateway --manifest-path "$root/Cargo.toml"
out=$(mktemp)
"$root/target/debug/banyan" dev --listen 127.0.0.1:0 --event-rate 0 >"$out" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*/graphql' "$out" | head -n 1 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { echo "banyan dev did not start"; exit 1; }
node "$here/audit.mjs" "$url"
