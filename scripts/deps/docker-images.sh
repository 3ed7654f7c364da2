#!/usr/bin/env bash
# Builds the local stand-ins for the upstream service images (no container
# registry is reachable): a debootstrap'ed Debian bookworm base, then one small
# image per service, all kept in the test engine's cached data root.
# Needs apt.sh (dockerd, debootstrap) and node-red.sh (run here if missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export IOTSTACK_TEST_CACHE="${IOTSTACK_TEST_CACHE:-$HOME/.cache/iotstack-test}"

if [[ ! -d "$IOTSTACK_TEST_CACHE/node-red/node_modules/node-red" ]]; then
    bash "$here/node-red.sh"
fi

cd "$repo/tests"
"${PYTHON:-python3}" -m harness.images
