#!/usr/bin/env bash
# Two replicas sharing one Redis (tests/tests/e2e/replicas.rs, the tests `cargo test` leaves out as
# ignored): an operation registered through one runs by hash on the other, a caller's rate limit
# counts across both, and with Redis gone both keep serving. Each test starts its own
# redis-server on a free loopback port. Installs Debian's redis-server when absent (as root, or
# through passwordless sudo); fails, never skips, when it cannot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib/tools.sh"
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
  # Debian's package may start a system-wide server; the tests start their own.
fi
REDIS_SERVER=$(command -v redis-server)
export REDIS_SERVER
echo "--- $("$REDIS_SERVER" --version)"
cd "$root"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# `--workspace`, as `cargo test --workspace` built it: the same features, so no rebuild.
cargo test -q --workspace --test e2e -- --ignored replicas:: 2>&1 | tee "$log"
# The filter must have matched: a renamed module would otherwise pass with no test run.
if ! grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$log"; then
  echo "redis-check: no replicas:: test ran" >&2
  exit 1
fi
