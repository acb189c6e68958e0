#!/usr/bin/env bash
# Stops only the processes ./start-demo.sh started (by their pid files). Safe to run twice.
set -uo pipefail
cd "$(dirname "$0")"
DEMO_DIR=.demo
stopped=0
# The bots first (they stop trading after their current action), then the prices, then the server.
for name in bots oracle daphne; do
    pidfile=$DEMO_DIR/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE 'daphne|run_oracle|run_bots'; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
        echo "stopped $name (pid $pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
[ $stopped -gt 0 ] || echo "nothing to stop: the demo is not running"
exit 0
