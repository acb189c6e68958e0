#!/usr/bin/env bash
# A PostgreSQL for Session Contracts on this machine (Debian), run as root:
#   sudo scripts/setup-postgres.sh            # then ./start-demo.sh serves from it
#   sudo scripts/setup-postgres.sh --tests    # prints TEST_DATABASE_URL=... for ./run-tests.sh instead
# Installs Debian's postgresql if it is missing and starts its cluster (listening on loopback only). Then:
#  - the demo: a database `session_contracts` owned by the role `sc_owner` (it runs the migrations), and a
#    role `sc_app` the site connects as, which may only SELECT and INSERT on the event log (granted by
#    start-demo.sh after each migrate); both URLs go to .env (DATABASE_URL, DATABASE_OWNER_URL).
#  - --tests: a role `sc_test` that may create databases and roles (pytest-django makes test_sc_test).
# Running it again gives the roles new passwords and rewrites the URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=demo
case "${1:-}" in
    --tests) MODE=tests ;;
    "") ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "error: run it as root (sudo $0): it installs packages and creates roles" >&2
    exit 2
fi
if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "Installing Debian's postgresql ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1) || true
if [ -z "${version:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main >/dev/null
    read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
fi
if [ "$status" != online ]; then
    pg_ctlcluster "$version" "$cluster" start
fi
psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"; }
role() {
    # role NAME PASSWORD ATTRIBUTES: create it, or give it the new password and attributes
    if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$1'")" = 1 ]; then
        psql_admin -c "ALTER ROLE $1 LOGIN PASSWORD '$2' $3"
    else
        psql_admin -c "CREATE ROLE $1 LOGIN PASSWORD '$2' $3"
    fi
}
password() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
url() { echo "postgres://$1:$2@127.0.0.1:$port/$3"; }

if [ $MODE = tests ]; then
    pw=$(password)
    role sc_test "$pw" "CREATEDB CREATEROLE"
    psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'sc_test'" | grep -q 1 || psql_admin -c "CREATE DATABASE sc_test OWNER sc_test"
    echo "TEST_DATABASE_URL=$(url sc_test "$pw" sc_test)"
    exit 0
fi

owner_pw=$(password)
app_pw=$(password)
role sc_owner "$owner_pw" "NOCREATEDB NOCREATEROLE"
role sc_app "$app_pw" "NOCREATEDB NOCREATEROLE"
if ! psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'session_contracts'" | grep -q 1; then
    psql_admin -c "CREATE DATABASE session_contracts OWNER sc_owner"
fi
touch .env
sed -i '/^DATABASE_URL=/d; /^DATABASE_OWNER_URL=/d' .env
{
    echo "DATABASE_URL=$(url sc_app "$app_pw" session_contracts)"
    echo "DATABASE_OWNER_URL=$(url sc_owner "$owner_pw" session_contracts)"
} >>.env
chmod 600 .env
[ -n "${SUDO_USER:-}" ] && chown "$SUDO_USER": .env
echo "PostgreSQL $version ($cluster, port $port): database session_contracts, owner sc_owner, app role sc_app."
echo "The URLs are in .env; ./start-demo.sh now migrates as sc_owner and serves as sc_app."
