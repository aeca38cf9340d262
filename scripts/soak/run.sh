#!/usr/bin/env bash
# The bounded soak: builds Banyan (release by default), then runs the load driver
# (tests/src/bin/banyan-soak.rs), which starts the devstack in its own process and `banyan serve`
# as a child on a free loopback port, drives it at saturation with the frontend contract's
# queries and mutations plus live subscriptions, samples the gateway's RSS from /proc/<pid>/status,
# prints requests, gateway errors, throughput and the RSS series, and exits non-zero on any
# gateway error, a panic, a dead gateway or memory that grew. The child is killed by its PID.
#
#   SOAK_SECONDS=600 (default)  how long to drive it     SOAK_CLIENTS=32  concurrent HTTP clients
#   SOAK_SUBSCRIPTIONS=2        WebSocket subscriptions  SOAK_SAMPLE_SECONDS=5  RSS sampling period
#   SOAK_WARMUP_SECONDS         left out of the memory verdict (default: a fifth, at most 60)
#   SOAK_RSS_TOLERANCE=0.10     last third's mean RSS over the first third's, at most
#   SOAK_EVENT_RATE=10          events per second the devstack appends
#   SOAK_PROFILE=release        or `debug` for a quick smoke that reuses the test build (a short
#                               run is not long enough to judge memory; errors still fail it)
# Loopback only; nothing is downloaded but crates.io dependencies.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${SOAK_PROFILE:-release}
case "$profile" in
  release)
    cargo build -q --release --manifest-path "$root/Cargo.toml" \
      -p banyan-gateway --bin banyan -p banyan-tests --bin banyan-soak ;;
  # The workspace's test build, which builds both binaries (their packages have integration
  # tests) with the tests' features: a no-op after `cargo test --workspace`, where a plain
  # `cargo build` of them would build them again with other features.
  debug) cargo test -q --workspace --no-run --manifest-path "$root/Cargo.toml" ;;
  *) echo "SOAK_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
echo "soak: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), $profile build"
exec "$root/target/$profile/banyan-soak" "$root/target/$profile/banyan"
