"""./start-demo.sh --bots, as a newcomer runs it: bots trade in the demo within seconds, a second start
finds it running, and ./stop-demo.sh stops all three processes. (An open demo without bots, which
seed_demo --bots refuses to add them to, is tested in markets/tests/test_bots.py: a third start of the
script would add a minute to the suite.)"""

from __future__ import annotations

import subprocess
import time

import pytest

from sessionsite.testing import free_port
from sessionsite.tests.test_start_demo import alive, demo_env, manage, pids, project_copy, start

pytestmark = pytest.mark.slow

BOT_TRADES = (
    "from markets.models import Trade; "
    "print(Trade.objects.filter(session_id='demo', taker__username__startswith='bot-taker-').count())"
)


def bot_trades(copy, env) -> int:
    done = manage(copy, env, "shell", "-v0", "-c", BOT_TRADES)
    return int(done.stdout.strip() or 0)


def test_start_demo_with_bots_trades_and_stop_demo_stops_all_three(tmp_path):
    copy = project_copy(tmp_path / "clone")
    env = demo_env(free_port())
    started: list[int] = []
    try:
        fresh = start(copy, env, "--bots")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert "bots ready: 2 makers, 3 takers in session demo" in fresh.stdout
        assert "Bots:      bot-maker-1..2 and bot-taker-1..3 trade in demo" in fresh.stdout
        assert ".demo/logs/bots.log" in fresh.stdout
        started = pids(copy)
        assert len(started) == 3 and all(alive(p) for p in started)
        deadline = time.monotonic() + 60  # seconds on an idle machine; CI runs four parts of the suite at once
        while bot_trades(copy, env) == 0:
            assert time.monotonic() < deadline, (copy / ".demo/logs/bots.log").read_text()[-2000:]
            time.sleep(1)
        again = start(copy, env, "--bots", timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout
        assert pids(copy) == started
    finally:
        stopped = subprocess.run(["./stop-demo.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0
    for name in ("bots", "oracle", "daphne"):
        assert f"stopped {name}" in stopped.stdout, stopped.stdout
    assert not any(alive(p) for p in started)
    log = (copy / ".demo/logs/bots.log").read_text()
    assert log.strip().splitlines()[-1].startswith("bots stopped (SIGTERM): "), log[-2000:]
    assert "Traceback" not in log
