"""run_oracle as a real process against the test database file: ticks stored, SIGTERM, exit codes."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from conftest import create_demo
from ledger import clock
from markets.models import Session
from oracle.models import Tick
from oracle.sources import SimSource, load_config, price_text
from oracle.tests.test_sources import DEFAULT_CONFIG, LEGS
from sessionsite import testing

BASE_DIR = Path(settings.BASE_DIR)
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def env() -> dict[str, str]:
    """The environment of a child process that uses this test's database (a file, or PostgreSQL's)."""
    return os.environ | {"DATABASE_URL": testing.test_database_url(), "PYTHONUNBUFFERED": "1"}


def oracle(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_oracle", *args],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_real_process_stores_the_seeded_ticks(users, env):
    create_demo(users)
    proc = oracle("--session-id", "demo", "--max-ticks", "5", "--tick-ms", "50", "--seed", "1", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "oracle stopped (--max-ticks 5 reached): 5 ticks, 20 prices stored" in out
    expected = list(itertools.islice(SimSource(LEGS, load_config(DEFAULT_CONFIG), seed=1, tick_seconds=0.05), 5))
    for leg in LEGS:
        ticks = Tick.objects.filter(session_id="demo", symbol=leg).order_by("at", "id")
        assert [t.price for t in ticks] == [row[leg] for row in expected]
        assert {t.source for t in ticks} == {"sim:seed=1"}


def test_sigterm_ends_a_running_process_cleanly_after_the_current_tick(users, env):
    create_demo(users)
    proc = oracle("--session-id", "demo", "--tick-ms", "50", "--seed", "2", env=env)
    try:
        deadline = time.monotonic() + 45
        while Tick.objects.count() < 3 * len(LEGS):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no ticks from the oracle"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    match = re.fullmatch(r"oracle stopped \(SIGTERM\): (\d+) ticks, (\d+) prices stored in .*", summary)
    assert match, out
    ticks = int(match.group(1))
    assert ticks >= 3
    assert int(match.group(2)) == Tick.objects.count() == ticks * len(LEGS)  # no half-written tick
    for leg in LEGS:
        assert Tick.objects.filter(symbol=leg).count() == ticks


def test_a_bad_replay_file_exits_non_zero_with_one_line(users, env, tmp_path):
    create_demo(users)
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,AAPL,NVDA,META\n2025-01-02T14:30:00Z,1,2,3\n")
    proc = oracle("--session-id", "demo", "--mode", "replay", "--csv", str(bad), env=env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert err.strip() == f"CommandError: {bad}:1:5: no column for leg ORCL (the header has AAPL, NVDA, META)"
    assert Tick.objects.count() == 0


# ---------------------------------------------------------------- started again: each leg resumes

# Big steps (about 3% a tick): a walk reset to the configured start would be plain to see.
WILD = ("--tick-ms", "50", "--vol", "3", "--time-scale", "10000")
CONFIGURED = {"AAPL": 230_000_000, "NVDA": 135_000_000, "META": 600_000_000, "ORCL": 170_000_000}


def newest(session_id: str, leg: str) -> Tick:
    return Tick.objects.filter(session_id=session_id, symbol=leg).order_by("-at", "-id").first()


def run_until(proc: subprocess.Popen, ticks: int, stop: signal.Signals) -> str:
    """Let `proc` store `ticks` ticks per leg, then stop it with `stop`; its output."""
    try:
        deadline = time.monotonic() + 45
        while Tick.objects.count() < ticks * len(LEGS):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no ticks from the oracle"
            time.sleep(0.05)
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_stopped_oracle_started_again_continues_every_leg_from_its_last_stored_tick(users, env, stop):
    create_demo(users)
    run_until(oracle("--session-id", "demo", "--seed", "5", *WILD, env=env), 8, stop)
    counts = {leg: Tick.objects.filter(symbol=leg).count() for leg in LEGS}
    assert len(set(counts.values())) == 1, counts  # killed or not: every tick whole, or not at all
    before = {leg: newest("demo", leg) for leg in LEGS}
    assert all(before[leg].price != CONFIGURED[leg] for leg in LEGS), before

    proc = oracle("--session-id", "demo", "--seed", "6", "--max-ticks", "5", *WILD, env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for leg in LEGS:
        after = Tick.objects.filter(symbol=leg, id__gt=before[leg].id).order_by("at", "id")
        prices = [t.price for t in after]
        assert len(prices) == 5
        assert prices[0] == before[leg].price  # from the stored integer itself, then on
        assert len(set(prices)) > 1
        assert f"resume {leg} at {price_text(before[leg].price)} from tick {before[leg].id} of demo" in out, out


def test_a_timed_session_settles_on_the_prices_continued_after_a_kill(users, env):
    """The issue's demo: the oracle killed and started again before t2; the fixing is the continued price."""
    t2 = clock.now() + dt.timedelta(seconds=15)  # room for a slow start on a loaded machine
    create_demo(users, "timed", end_mode="timed", t2=t2)
    run_until(oracle("--session-id", "timed", "--seed", "5", *WILD, env=env), 6, signal.SIGKILL)
    before = {leg: newest("timed", leg).price for leg in LEGS}
    assert clock.now() < t2 - dt.timedelta(seconds=1), "too slow to restart before t2"
    # still after the restart: every tick up to t2 is the resumed price, so the fixing must be it
    proc = oracle("--session-id", "timed", "--seed", "6", "--vol", "0", "--drift", "0", "--tick-ms", "50", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "scheduler: timed settled" in out and "oracle stopped (all sessions settled)" in out
    session = Session.objects.get(id="timed")
    assert session.settlement.prices == before
    assert all(before[leg] != CONFIGURED[leg] for leg in LEGS)
