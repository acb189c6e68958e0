#!/usr/bin/env bash
# The whole suite: creates .venv if missing, installs the pinned dependencies, runs pytest-django on a
# throw-away SQLite file. Extra arguments go to pytest (e.g. ./run-tests.sh -k accept -x).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh
ensure_venv requirements-dev.txt

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "note: ${CHROMIUM:-/usr/bin/chromium} not found: browser tests will be reported as skipped."
    echo "      Install it with: sudo apt-get install -y chromium   (CI does this in .ci/run)"
fi

# SQLite by default, on a throw-away file; TEST_DATABASE_URL=postgres://... runs the same suite on
# PostgreSQL (pytest-django creates and drops a test_<name> database there).
export DATABASE_URL="${TEST_DATABASE_URL:-sqlite:///$(mktemp -d)/test_session_contracts.db}"
export DJANGO_SETTINGS_MODULE=sessionsite.settings
set +e
.venv/bin/python -m pytest -rs "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "error: no tests were collected" >&2
    exit 1
fi
exit $rc
