#!/usr/bin/env bash
# Where a TemplateList request's CPU goes, for Banyan or the floor, at a fixed load: runs the
# harness (`load`, release) at 1000 requests per second over at most 64 connections with zero
# backend latency, records the serving process with `perf record` (2000 samples per second,
# DWARF call graphs) for 3 s in the middle of the run, and splits the samples by the part of the
# request they were in (contexts.py), per request. BENCHMARKS.md, "Where the gap to the floor
# is", reads Banyan's table against the floor's.
#
#   scripts/profile/run.sh banyan [GATEWAY_BIN]   the gateway (default: target/release/banyan)
#   scripts/profile/run.sh floor                  the floor, the harness's own handler
#
# Needs `perf` (with permission to record another process) and python3; it fails when either is
# missing. A profiled run costs more CPU than a plain one: compare tables, not with `load`'s
# figures. Loopback only; the processes it starts are ended by the harness.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
variant=${1:?usage: run.sh banyan|floor [GATEWAY_BIN]}
gateway=${2:-$root/target/release/banyan}
command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "profile: python3 is not installed" >&2; exit 1; }
case "$variant" in
  banyan) pattern="^$gateway serve" ;;
  floor) pattern="^$root/target/release/load serve-floor" ;;
  *) echo "profile: banyan or floor, not $variant" >&2; exit 2 ;;
esac
cargo build -q --release --manifest-path "$root/Cargo.toml" -p banyan-gateway --bin banyan -p banyan-bench --bin load
out=$(mktemp -d)
rate=1000 seconds=3
"$root/target/release/load" --ops TemplateList --variants "$variant" --latency zero --concurrency 64 \
  --rate "$rate" --duration 9s --warmup 1s --gateway-bin "$gateway" > "$out/load.txt" 2>&1 &
load_pid=$!
sleep 4
pid=$(pgrep -f "$pattern" | head -1 || true)
if [ -z "$pid" ]; then
  echo "profile: no process matches $pattern" >&2
  wait "$load_pid" || true
  exit 1
fi
perf record -F 2000 --call-graph dwarf,16384 -p "$pid" -o "$out/perf.data" -- sleep "$seconds" > /dev/null 2>&1
wait "$load_pid"
grep TemplateList "$out/load.txt" | tail -1
perf script -i "$out/perf.data" -F comm,tid,ip,sym --no-inline 2> /dev/null > "$out/perf.script"
python3 "$root/scripts/profile/contexts.py" "$out/perf.script" $((rate * seconds)) 2000
rm -rf "$out"
