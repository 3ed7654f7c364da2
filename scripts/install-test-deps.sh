#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export IOTSTACK_TEST_CACHE="${IOTSTACK_TEST_CACHE:-$HOME/.cache/iotstack-test}"
mkdir -p "$IOTSTACK_TEST_CACHE"

for step in "$here"/deps/*.sh; do
    echo "== $(basename "$step")"
    bash "$step"
done
