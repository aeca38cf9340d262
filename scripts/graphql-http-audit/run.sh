#!/usr/bin/env bash
# Starts `banyan dev` on a free loopback port, runs every graphql-http server audit against it,
# and stops it. Fails unless all of them (MUST and SHOULD) are ok and there are as many as today:
# a notice, a warning or an error is a failure, and so is not being able to run them. Installs
# node and npm (Debian's packages) when they are absent, then the npm packages of package-lock.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# graphql-http 1.23.1's serverAudits: 61, all ok today.
expected_audits=61
. "$root/scripts/lib/tools.sh"
need_node 18 # for its global fetch
(cd "$here" && npm ci --no-audit --no-fund --silent)
. "$root/scripts/lib/banyan-dev.sh"
start_banyan_dev "$root" --event-rate 0
node "$here/audit.mjs" "$BANYAN_URL" "$expected_audits"
