"""run_oracle as a real process against the test database file: ticks stored, SIGTERM, exit codes."""

from __future__ import annotations

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
from oracle.models import Tick
from oracle.sources import SimSource, load_config
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
