#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need
# (redis-server and PHP with Debian's Laravel 8 when missing, the package with its test extra,
# supervisor from PyPI), then lints, type-checks, checks the import layers (import-linter), runs
# pytest, checks that the generated results, docs pages and pictures are current, and builds the
# docs site (mkdocs --strict). Fails on the first failure.
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

# The real Laravel worker tests (autoscaler/data/laravel_app) run `php artisan queue:work` on
# Debian's packages: PHP 8.2 with phpredis and Laravel 8.83, no composer, no network.
php_ready() {
  local modules  # read whole first: `php -m | grep -q` can die of SIGPIPE under pipefail
  command -v php >/dev/null 2>&1 && [ -f /usr/share/php/Illuminate/autoload.php ] &&
    modules=$(php -m 2>/dev/null) && grep -qx redis <<<"$modules" && grep -qx pcntl <<<"$modules"
}
if ! php_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing php-cli php-laravel-framework php-redis (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      php-cli php-laravel-framework php-redis >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "PHP with Laravel is missing: apt-get install php-cli php-laravel-framework php-redis" >&2
    exit 1
  else
    echo "note: PHP with Laravel is missing; the real Laravel worker tests will be skipped" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
then
  # Debian's own python3 refuses pip installs outside a virtualenv (PEP 668): use .venv.
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv ($PYTHON is externally managed)"
    if ! "$PYTHON" -m venv .venv; then
      rm -rf .venv
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
      else
        echo "cannot create .venv: install python3-venv and re-run" >&2
        exit 1
      fi
    fi
  fi
  PYTHON=.venv/bin/python
fi
echo "== installing autoscaler with its test extra"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
echo "== mypy (strict, autoscaler/ and docs/generate.py)"
"$PYTHON" -m mypy
echo "== import-linter (imports flow one way through the packages, pyproject.toml)"
"$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/lint-imports"
echo "== pytest"
"$PYTHON" -m pytest "$@"
if [ "$#" -eq 0 ]; then  # the whole suite only; a developer's `tests/run.sh -k x` skips it
  echo "== simulations/README.md results are current"
  "$PYTHON" simulations/update_results.py --check
  echo "== generated docs (references, pictures) are current"
  "$PYTHON" docs/generate.py --check
  echo "== mkdocs build --strict (a broken link or a page missing from the nav fails)"
  site=$(mktemp -d)
  trap 'rm -rf "$site"' EXIT
  NO_MKDOCS_2_WARNING=1 "$PYTHON" -m mkdocs build --strict --quiet --site-dir "$site"
fi
