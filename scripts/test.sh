#!/usr/bin/env bash
# Installs iotstack and every real server the tests use, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The package first: the image build step of the installer uses its Docker SDK.
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
bash scripts/install-test-deps.sh

ruff format --check src tests benchmarks
ruff check src tests benchmarks
python3 -m pytest "$@"
