#!/usr/bin/env bash
# Installs iotstack and every real server the tests use, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

ruff format --check src tests benchmarks
ruff check src tests benchmarks
python3 -m pytest "$@"
