#!/usr/bin/env bash
# One command to a running demo: venv, migrations, seeded session `demo`, daphne + the price oracle
# (+ with --bots: 2 bot makers and 3 bot takers trading in it, manage.py run_bots).
#   ./start-demo.sh [--replay] [--replay-csv FILE] [--reset] [--bots] [--port N] [--no-browser]
# Environment: PORT (default 8000), HOST (default 127.0.0.1; beyond loopback, e.g. 0.0.0.0, the demo accounts
# get random passwords, kept in .demo/passwords), DATABASE_URL (default sqlite:///./session_contracts.db).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh

PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
MODE=sim
REPLAY_CSV=oracle/data/prices_demo.csv
RESET=0
OPEN_BROWSER=1
BOTS=0
BOT_MAKERS=2
BOT_TAKERS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --replay) MODE=replay ;;
        --replay-csv) MODE=replay; REPLAY_CSV=${2:?--replay-csv needs a file}; shift ;;
        --replay-csv=*) MODE=replay; REPLAY_CSV=${1#--replay-csv=} ;;
        --reset) RESET=1 ;;
        --bots) BOTS=1 ;;
        --port) PORT=${2:?--port needs a number}; shift ;;
        --port=*) PORT=${1#--port=} ;;
        --no-browser) OPEN_BROWSER=0 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$PORT" in ''|*[!0-9]*) echo "error: PORT must be a number, not '$PORT'" >&2; exit 2 ;; esac

DEMO_DIR=.demo
LOGS=$DEMO_DIR/logs
mkdir -p "$LOGS"

# Alive and not a zombie (a killed process nobody has reaped yet still answers kill -0).
running() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$(cat "$1")/status"
}
# With --bots, a demo whose bots are not running is not "already running": it is started again with them;
# one listening on another HOST (this machine only, or the network) is started again on this one.
running_host=$(cat "$DEMO_DIR/host" 2>/dev/null || echo 127.0.0.1)
if running "$DEMO_DIR/daphne.pid" && running "$DEMO_DIR/oracle.pid" && [ $RESET -eq 0 ] \
    && { [ $BOTS -eq 0 ] || running "$DEMO_DIR/bots.pid"; } && [ "$running_host" = "$HOST" ]; then
    echo "The demo is already running: $(cat "$DEMO_DIR/url" 2>/dev/null || echo "see $DEMO_DIR/")"
    echo "  Stop it with ./stop-demo.sh, or start it afresh with ./start-demo.sh --reset."
    exit 0
fi
if running "$DEMO_DIR/daphne.pid" || running "$DEMO_DIR/oracle.pid" || running "$DEMO_DIR/bots.pid"; then
    if [ $RESET -eq 0 ]; then
        for name in daphne oracle; do
            running "$DEMO_DIR/$name.pid" || echo "The demo's $name had stopped (see $LOGS/$name.log): starting the demo again."
        done
        if [ $BOTS -eq 1 ] && ! running "$DEMO_DIR/bots.pid"; then
            echo "The demo's bots are not running: starting the demo again to start them."
        fi
        if [ "$running_host" != "$HOST" ]; then
            echo "The demo listens on $running_host: starting it again on $HOST."
        fi
    fi
    ./stop-demo.sh
fi

port_holder() {
    # Prints "pid/program" of whatever listens on $1, if anything does.
    if command -v ss >/dev/null 2>&1; then
        ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\2 \1/p' | head -1
    elif command -v lsof >/dev/null 2>&1; then
        lsof -nP -iTCP:"$1" -sTCP:LISTEN 2>/dev/null | awk 'NR==2 {print $2" "$1}'
    fi
}
port_busy() {
    "${PYTHON_FOR_CHECK:-.venv/bin/python}" - "$HOST" "$1" <<'PY'
import socket, sys
host = sys.argv[1].strip("[]")
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
# As daphne binds: connections of a server stopped a moment ago (TIME-WAIT) do not hold the port.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, int(sys.argv[2])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

ensure_venv requirements.txt

if port_busy "$PORT"; then
    holder=$(port_holder "$PORT" || true)
    echo "error: port $PORT is already in use${holder:+ by process $holder}." >&2
    echo "       Stop that process, or choose another port: PORT=8001 ./start-demo.sh" >&2
    exit 1
fi

# The database: DATABASE_URL from the environment or .env (scripts/setup-postgres.sh writes it there), else
# a SQLite file. With DATABASE_OWNER_URL too, migrations run as that owner and the site as DATABASE_URL's role.
from_env_file() { if [ -f .env ]; then sed -n "s/^$1=//p" .env | tail -1; fi; }
DATABASE_URL=${DATABASE_URL:-$(from_env_file DATABASE_URL)}
DATABASE_OWNER_URL=${DATABASE_OWNER_URL:-$(from_env_file DATABASE_OWNER_URL)}
export DATABASE_URL=${DATABASE_URL:-sqlite:///./session_contracts.db}
shown_url=$(echo "$DATABASE_URL" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')
export DEMO_MODE=${DEMO_MODE:-true}
export DJANGO_SETTINGS_MODULE=sessionsite.settings
PY=.venv/bin/python

if [ $RESET -eq 1 ]; then
    case "$DATABASE_URL" in
        sqlite:///*)
            db=$($PY -c 'from sessionsite.config import database_from_url; import os; print(database_from_url(os.environ["DATABASE_URL"])["NAME"])')
            echo "Resetting: removing $db"
            rm -f "$db" "$db-wal" "$db-shm"
            ;;
        *) echo "error: --reset only removes SQLite files; reset $shown_url by hand" >&2; exit 2 ;;
    esac
fi

# Listening beyond this machine: the room can reach the demo, so its accounts get passwords of their own.
case "$HOST" in
    127.*|localhost|::1|'[::1]') exposed=0 ;;
    *) exposed=1 ;;
esac
PASSWORDS=$DEMO_DIR/passwords
new_passwords=0

if [ -n "$DATABASE_OWNER_URL" ]; then
    echo "Migrating the database ($shown_url) as its owner ..."
    DATABASE_URL=$DATABASE_OWNER_URL $PY manage.py migrate --noinput -v0
    app_role=$($PY -c 'from sessionsite.config import database_from_url; import os; print(database_from_url(os.environ["DATABASE_URL"])["USER"])')
    DATABASE_URL=$DATABASE_OWNER_URL $PY manage.py grant_app_role "$app_role"
else
    echo "Migrating the database ($shown_url) ..."
    $PY manage.py migrate --noinput -v0
fi
# A settled (or cancelled) demo stays as it is, for its history; seed_demo then opens the next, demo-2...
seed_args=()
if [ $BOTS -eq 1 ]; then
    seed_args=(--bots "$BOT_MAKERS,$BOT_TAKERS")
fi
# On the network: random passwords, made once and kept in .demo/passwords (later starts, on the network or
# not, keep them; seed_demo gives them to accounts it makes whenever the file exists).
if [ $exposed -eq 1 ]; then
    [ -s "$PASSWORDS" ] || new_passwords=1
    seed_args+=(--passwords-file "$PASSWORDS")
fi
seeded=$($PY manage.py seed_demo ${seed_args[@]+"${seed_args[@]}"})
echo "$seeded"
SESSION=$(echo "$seeded" | sed -n 's/^demo ready: session \([^;]*\);.*/\1/p' | tail -1)
SESSION=${SESSION:-demo}
# Bots join a session only before it opens: an open demo without them runs without them (seed_demo says so).
if [ $BOTS -eq 1 ] && ! echo "$seeded" | grep -q '^bots ready:'; then
    BOTS=0
    echo "Starting the demo without bots."
fi
# An admin account of its own (the demo's accounts are never staff): password made once, kept in .demo/.
if [ ! -s "$DEMO_DIR/admin-password" ] || ! $PY manage.py shell -v0 -c 'import sys; from django.contrib.auth import get_user_model; sys.exit(0 if get_user_model().objects.filter(username="admin", is_superuser=True).exists() else 1)' 2>/dev/null; then
    ( umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(12))' >"$DEMO_DIR/admin-password" )
    DJANGO_SUPERUSER_PASSWORD=$(cat "$DEMO_DIR/admin-password") $PY manage.py shell -v0 -c '
import os
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="admin")
user.is_staff = user.is_superuser = True
user.set_password(os.environ["DJANGO_SUPERUSER_PASSWORD"])
user.save()'
fi

lan_urls=""
if [ $exposed -eq 1 ]; then
    # Reachable from the room: one URL per address a phone can open; those hosts accepted by Django, and the
    # URLs known to the site (the invites page opened at 127.0.0.1 offers them).
    lan_urls=$($PY -m sessionsite.lan urls --bind "$HOST" --port "$PORT" || true)
    export ALLOWED_HOSTS=${ALLOWED_HOSTS:-$($PY -m sessionsite.lan hosts --bind "$HOST" | paste -sd, - || true)}
    export NETWORK_URLS=${NETWORK_URLS:-$(echo "$lan_urls" | paste -sd' ' -)}
fi
case "$HOST" in
    0.0.0.0|::|'') local_host=127.0.0.1 ;;  # every interface: check it through loopback
    *) local_host=$HOST ;;
esac

echo "Starting daphne on http://$HOST:$PORT ..."
nohup $PY -m daphne -b "$HOST" -p "$PORT" sessionsite.asgi:application >"$LOGS/daphne.log" 2>&1 &
echo $! >"$DEMO_DIR/daphne.pid"

if [ "$MODE" = replay ]; then
    oracle_args=(--mode replay --csv "$REPLAY_CSV" --loop)
else
    oracle_args=(--mode sim)
fi
echo "Starting the price oracle (${oracle_args[*]}) ..."
nohup $PY manage.py run_oracle "${oracle_args[@]}" --all >"$LOGS/oracle.log" 2>&1 &
echo $! >"$DEMO_DIR/oracle.pid"

if [ $BOTS -eq 1 ]; then
    echo "Starting the bots ($BOT_MAKERS makers, $BOT_TAKERS takers) ..."
    PYTHONUNBUFFERED=1 nohup $PY manage.py run_bots --session "$SESSION" --makers $BOT_MAKERS --takers $BOT_TAKERS \
        >"$LOGS/bots.log" 2>&1 &
    echo $! >"$DEMO_DIR/bots.pid"
fi

url="http://$local_host:$PORT"
for _ in $(seq 1 150); do
    if $PY -c "import urllib.request,sys; urllib.request.urlopen('$url/health', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! running "$DEMO_DIR/daphne.pid"; then
        echo "error: daphne stopped; last lines of $LOGS/daphne.log:" >&2
        tail -20 "$LOGS/daphne.log" >&2
        ./stop-demo.sh >/dev/null
        exit 1
    fi
    sleep 0.2
done
if ! $PY -c "import urllib.request; urllib.request.urlopen('$url/health', timeout=2)" 2>/dev/null; then
    echo "error: $url/health did not answer within 30 s; see $LOGS/daphne.log" >&2
    ./stop-demo.sh >/dev/null
    exit 1
fi
# The oracle prints its banner once its prices are loaded and checked; until then it may still refuse
# to start (a malformed file, a broken config). Say "running" only when every process is.
for _ in $(seq 1 150); do
    running "$DEMO_DIR/oracle.pid" || break
    grep -q '^oracle ' "$LOGS/oracle.log" 2>/dev/null && break
    sleep 0.2
done
started=(oracle daphne)
if [ $BOTS -eq 1 ]; then
    started+=(bots)
    # The bots print their banner once they have checked the session and their accounts.
    for _ in $(seq 1 150); do
        running "$DEMO_DIR/bots.pid" || break
        grep -q '^bots ' "$LOGS/bots.log" 2>/dev/null && break
        sleep 0.2
    done
fi
for name in "${started[@]}"; do
    if ! running "$DEMO_DIR/$name.pid" || { [ $name = oracle ] && ! grep -q '^oracle ' "$LOGS/oracle.log"; } \
        || { [ $name = bots ] && ! grep -q '^bots ' "$LOGS/bots.log"; }; then
        echo "error: the $name did not start; last lines of $LOGS/$name.log:" >&2
        tail -5 "$LOGS/$name.log" >&2
        ./stop-demo.sh >/dev/null
        exit 1
    fi
done

echo "$url/sessions/$SESSION/" >"$DEMO_DIR/url"
echo "$HOST" >"$DEMO_DIR/host"
logs_msg="$LOGS/daphne.log, $LOGS/oracle.log"
bots_msg=""
if [ $BOTS -eq 1 ]; then
    logs_msg="$logs_msg, $LOGS/bots.log"
    bots_msg=$'\n'"  Bots:      bot-maker-1..$BOT_MAKERS and bot-taker-1..$BOT_TAKERS trade in $SESSION (manage.py run_bots)"
fi
if [ $new_passwords -eq 1 ]; then
    users_msg="organiser, alice, bob, mm — new passwords, shown this once and kept in $PASSWORDS:"$'\n'
    users_msg+=$(awk '!/^#/ && NF == 2 {printf "               %-10s %s\n", $1, $2}' "$PASSWORDS")
elif [ -s "$PASSWORDS" ]; then
    users_msg="organiser, alice, bob, mm — passwords in $PASSWORDS (not \"demo\")"
else
    users_msg='organiser, alice, bob, mm — password "demo"'
fi
cat <<MSG

Session Contracts demo is running.
  Floor:     $url/sessions/$SESSION/
  Sessions:  $url/
  Admin:     $url/admin/          (user admin, password in $DEMO_DIR/admin-password)
  API docs:  $url/api/v1/docs
  Health:    $url/health
  Users:     $users_msg
             (demo mode: switch user from the top bar, on this machine$( [ "${DEMO_OPEN_TO_NETWORK:-false}" = true ] && echo " and from the network"))$bots_msg
  Logs:      $logs_msg
  Stop:      ./stop-demo.sh
MSG

if [ $exposed -eq 1 ]; then
    if [ -n "$lan_urls" ]; then
        where=$(echo "$lan_urls" | sed 's/^/           /')
    else
        where="           (no network address found: see ip addr)"
    fi
    if [ "${DEMO_OPEN_TO_NETWORK:-false}" = true ]; then
        switcher="is OPEN to the network (DEMO_OPEN_TO_NETWORK=true): anyone can act as any demo participant,
         the organiser too, and pause or settle the session."
    else
        switcher="answers only this machine (DEMO_OPEN_TO_NETWORK=true would open it)."
    fi
    cat <<WARN

WARNING: the demo listens on $HOST, beyond this machine: anyone on the network can reach it at
$where
         The demo accounts have passwords of their own, not "demo" (in $PASSWORDS). The account
         organiser pauses, settles and invites: keep its password to yourself (off the projector) and
         give people invite links (the floor's "Invite people"). The "act as" switcher
         $switcher
WARN
fi

if [ $OPEN_BROWSER -eq 1 ] && [ -z "${CI:-}" ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; }; then
    for opener in xdg-open open; do
        if command -v $opener >/dev/null 2>&1; then
            $opener "$url/sessions/$SESSION/" >/dev/null 2>&1 || true
            break
        fi
    done
fi
