#!/usr/bin/env bash
# Two replicas sharing one Redis (tests/tests/replicas.rs, the tests `cargo test` leaves out as
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
cargo test -q -p banyan-tests --test replicas -- --ignored
