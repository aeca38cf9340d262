#!/usr/bin/env bash
# Checks the deployment files with no cluster and no container runtime:
#   1. the Dockerfile's build stage: its RUN commands, read from the Dockerfile, run here in the
#      checkout (the `production` profile's build, fat LTO), so the image builds with
#      what CI builds;
#   2. every manifest in deploy/ against the Kubernetes OpenAPI schemas (kubernetes-validate,
#      from PyPI, pinned in requirements.txt; strict: an unknown field is an error);
#   3. that the pieces agree (check.py consistency: ports, probes, drain timings, the HPA's
#      metrics are series Banyan exports, the image runs as non-root, ...);
#   4. the ConfigMap's banyan.toml and routing table with the built binary: `banyan serve
#      --check` (paths pointed at the checkout's copies) and `banyan migration check`.
# Needs python3 with venv (Debian's python3-venv is installed when missing). Fails, never skips.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
source scripts/lib/tools.sh

kubernetes_version=1.34.0

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
venv=$here/.venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
python=$venv/bin/python

echo "--- the Dockerfile's build stage"
while IFS= read -r command; do
  echo "+ $command"
  bash -c "$command"
done < <("$python" "$here/check.py" build-commands)
banyan=$root/target/production/banyan
[ -x "$banyan" ] || { echo "error: the build stage made no $banyan" >&2; exit 1; }

echo "--- Kubernetes $kubernetes_version schemas"
mapfile -t manifests < <(find deploy -name '*.yaml' ! -name kustomization.yaml | sort)
"$venv/bin/kubernetes-validate" --strict --quiet -k "$kubernetes_version" "${manifests[@]}"
echo "${#manifests[@]} manifests valid"

echo "--- consistency"
"$python" "$here/check.py" consistency

echo "--- the ConfigMap's configuration"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" "$here/check.py" extract-config "$scratch"
env -i PATH="$PATH" \
  BANYAN_AUTH__SERVICE_IDENTITY_SECRETS='["a-placeholder-secret-of-at-least-32-bytes"]' \
  BANYAN_MIGRATION__ROUTING_TABLE="$scratch/routing.toml" \
  BANYAN_PERSISTED__MANIFEST="$root/frontend-contract/persisted-operations.json" \
  BANYAN_ADMIN__CONTRACT="$root/frontend-contract" \
  "$banyan" serve --check --config "$scratch/banyan.toml"
"$banyan" migration check "$scratch/routing.toml"
