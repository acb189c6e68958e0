#!/usr/bin/env bash
# The whole suite: creates .venv if missing, installs the pinned dependencies, runs pytest-django on a
# throw-away SQLite file (without arguments: in two parts at once, see below). Extra arguments go to pytest
# (e.g. ./run-tests.sh -k accept -x) and run in one part.
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
export DJANGO_SETTINGS_MODULE=sessionsite.settings

run() {  # pytest on its own throw-away SQLite file (or TEST_DATABASE_URL's database); its exit code
    DATABASE_URL="${TEST_DATABASE_URL:-sqlite:///$(mktemp -d)/test_session_contracts.db}" \
        .venv/bin/python -m pytest -rs "$@"
}

said() {  # an exit code as the suite's: no test collected is a failure, not a pass
    if [ "$1" -eq 5 ]; then
        echo "error: no tests were collected${2:+ ($2)}" >&2
        return 1
    fi
    return "$1"
}

set +e
if [ $# -eq 0 ] && [ -z "${TEST_DATABASE_URL:-}" ]; then
    # The whole suite on SQLite in two parts at once, each on its own file: the tests that mostly wait on
    # servers, browsers and the processes they start (slow or browser), shown as they run, and the others
    # (mostly CPU), shown after. On 2 cores this takes about as long as the first part alone.
    rest_log=$(mktemp)
    run -q -m "not slow and not browser" >"$rest_log" 2>&1 &
    rest_pid=$!
    echo "==== servers, browsers and processes (slow or browser) ===="
    run -m "slow or browser"
    live=$?
    wait "$rest_pid"
    rest=$?
    echo "==== the others (not slow, not browser) ===="
    cat "$rest_log"
    rm -f "$rest_log"
    said "$live" "slow or browser"
    live=$?
    said "$rest" "the others"
    rest=$?
    echo "slow or browser: exit $live; the others: exit $rest"
    [ "$live" -eq 0 ] && [ "$rest" -eq 0 ]
    exit $?
fi
run "$@"
said $?
exit $?
