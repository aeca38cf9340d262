# Sourced by the scripts beside it: starts `banyan dev` on a free loopback port in the
# background and sets BANYAN_URL to its /graphql URL; it is stopped when the script exits.
# Usage: start_banyan_dev <repo root> [extra `banyan dev` flags...]
start_banyan_dev() {
  local root=$1
  shift
  cargo build -q -p banyan-gateway --manifest-path "$root/Cargo.toml"
  BANYAN_DEV_OUT=$(mktemp)
  "$root/target/debug/banyan" dev --listen 127.0.0.1:0 "$@" >"$BANYAN_DEV_OUT" 2>/dev/null &
  BANYAN_DEV_PID=$!
  trap 'kill "$BANYAN_DEV_PID" 2>/dev/null || true; rm -f "$BANYAN_DEV_OUT"' EXIT
  BANYAN_URL=""
  for _ in $(seq 1 100); do
    BANYAN_URL=$(grep -o 'http://127.0.0.1:[0-9]*/graphql' "$BANYAN_DEV_OUT" | head -n 1 || true)
    [ -n "$BANYAN_URL" ] && return 0
    sleep 0.2
  done
  echo "banyan dev did not start" >&2
  return 1
}
