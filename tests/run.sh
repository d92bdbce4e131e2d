#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need
# (redis-server from Debian when missing, the package with its test extra, supervisor
# from PyPI), then lints, type-checks and runs pytest. Fails on the first failure.
# Extra arguments go to pytest, e.g. tests/run.sh -k policy
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing redis-server (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install it (apt-get install redis-server) and re-run" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
echo "== installing autoscaler with its test extra"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
echo "== mypy (strict, autoscaler/)"
"$PYTHON" -m mypy
echo "== pytest"
"$PYTHON" -m pytest "$@"
if [ "$#" -eq 0 ]; then  # the whole suite only; a developer's `tests/run.sh -k x` skips it
  echo "== simulations/README.md results are current"
  "$PYTHON" simulations/update_results.py --check
fi
