#!/usr/bin/env bash
# Installs Node-RED 4.x from npm into the test cache. Safe to run again.
set -euo pipefail

version="${NODE_RED_VERSION:-4}"
cache="${IOTSTACK_TEST_CACHE:-$HOME/.cache/iotstack-test}"
target="$cache/node-red"
bin="$target/node_modules/.bin/node-red"

if [[ -x "$bin" ]] && [[ -f "$target/.complete-$version" ]]; then
    echo "Node-RED already in $target"
    exit 0
fi

mkdir -p "$target"
if [[ ! -f "$target/package.json" ]]; then
    echo '{"name": "iotstack-test-node-red", "private": true}' >"$target/package.json"
fi
npm install --prefix "$target" --no-audit --no-fund --loglevel=error \
    "node-red@$version" >/dev/null

"$bin" --help >/dev/null
touch "$target/.complete-$version"
echo "Node-RED $(node -p "require('$target/node_modules/node-red/package.json').version") in $target"
