#!/usr/bin/env bash
# Starts `banyan dev` (events at 200/s) on a free loopback port, runs check.mjs against its
# GraphiQL, and stops it. Needs node, npm and Chromium (Debian's `chromium` package).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
(cd "$here" && npm install --no-audit --no-fund --silent)
cargo build -q -p banyan-gateway --manifest-path "$root/Cargo.toml"
out=$(mktemp)
"$root/target/debug/banyan" dev --listen 127.0.0.1:0 --event-rate 200 >"$out" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*/graphql' "$out" | head -n 1 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { echo "banyan dev did not start"; exit 1; }
node "$here/check.mjs" "$url" "${1:-$here/graphiql.png}"
