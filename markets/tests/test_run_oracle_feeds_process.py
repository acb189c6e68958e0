"""Two run_oracle processes feeding one session at once (`--source a`, `--source b`) against the test
database: each stores its own ticks with volumes, both run the scheduler, the session settles once by the
composite of the two sources, and verify_ledger makes the fixing again."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets.models import Session
from markets.tests.test_run_oracle_process import env, oracle  # noqa: F401 (env: a fixture)
from oracle.models import Tick
from oracle.tests.test_sources import LEGS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
COMPOSITE = {"rule": "composite", "inner": {"rule": "last"}, "sources": ["a", "b"], "min_sources": 2}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_two_feeds_at_once_settle_once_by_the_composite_of_both(users, env):  # noqa: F811
    t2 = clock.now() + dt.timedelta(seconds=12)  # room for two slow starts on a loaded machine
    create_demo(users, "timed", end_mode="timed", t2=t2, fixing_rule=COMPOSITE)
    wild = ("--session-id", "timed", "--tick-ms", "100", "--vol", "2", "--time-scale", "10000", "--quiet")
    procs = {name: oracle(*wild, "--source", name, "--seed", seed, env=env) for name, seed in (("a", "1"), ("b", "2"))}
    outs = {}
    try:
        for name, proc in procs.items():
            outs[name] = proc.communicate(timeout=90)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for name, proc in procs.items():
        out, err = outs[name]
        assert proc.returncode == 0, err
        assert "oracle stopped (all sessions settled)" in out, out  # both stop: the session is settled
        assert "failed" not in out and not err.strip(), (out, err)
    assert sum("scheduler: timed settled" in outs[name][0] for name in procs) == 1  # by one of them, once

    session = Session.objects.get(id="timed")
    assert session.status == "settled"
    [event] = Event.objects.filter(stream="session-timed", type="SessionSettled")
    for leg in LEGS:
        ticks = Tick.objects.filter(session_id="timed", symbol=leg)
        assert {t.source for t in ticks} == {"a", "b"}
        assert all(t.volume is not None and t.volume > 0 for t in ticks)  # the sim's sizes, on every tick
        lasts = {s: ticks.filter(source=s, at__lte=t2).order_by("-at", "-id").first() for s in "ab"}
        record = event.data["fixing"]["legs"][leg]
        assert record["by_source"] == {s: t.price for s, t in lasts.items()}  # each feed's own last
        assert event.data["prices"][leg] == min(t.price for t in lasts.values())  # the lower median of two
        assert session.settlement.prices[leg] == event.data["prices"][leg]
    verify = io.StringIO()
    call_command("verify_ledger", stdout=verify)
    assert "chain intact, replay matches" in verify.getvalue()


def test_a_real_file_replayed_by_run_oracle_settles_at_its_vwap_as_computed_from_the_raw_file(users, env, settings):  # noqa: F811
    """GOOG's 2008 closes and share volumes (oracle/data/goog_2008_volumes.csv) replayed by a real run_oracle
    process at 20 ms a row, then settled by hand (`manage.py settle ID`: the window ends then) by the VWAP of
    every row, checked against csv + Fraction straight from the file (oracle/tests/test_replay_real_volumes.py).
    Settled by hand, not at a t2 set before the process started: on a loaded machine the rows may take
    longer than any t2 chosen in advance."""
    from oracle.tests.test_replay_real_volumes import LEGS as GOOG_LEGS
    from oracle.tests.test_replay_real_volumes import independent_vwap

    settings.ALLOW_MANUAL_SETTLE = True
    rule = {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 3600}, {"rule": "last"}]}
    create_demo(users, "goog", legs=GOOG_LEGS, q=[100, 50], fixing_rule=rule)
    args = ("--session-id", "goog", "--mode", "replay", "--csv", "goog_2008_volumes.csv", "--tick-ms", "20")
    proc = oracle(*args, "--quiet", env=env)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "end of the replay file): 250 ticks" in out, out
    settled = io.StringIO()
    call_command("settle", "goog", stdout=settled)
    assert "settled goog" in settled.getvalue(), settled.getvalue()
    stored = Tick.objects.filter(session_id="goog", symbol="GOOG")
    assert stored.count() == 250 and stored.filter(volume__isnull=True).count() == 0
    [event] = Event.objects.filter(stream="session-goog", type="SessionSettled")
    record = event.data["fixing"]["legs"]["GOOG"]
    assert (record["tier"], record["rule"]) == (0, "vwap") and len(record["used"]) == 250
    assert event.data["prices"]["GOOG"] == independent_vwap(250)
    assert event.data["fixing"]["legs"]["GOOG OPEN"]["rule"] == "last"  # the opens carry no volume
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)
    assert "goog" in out.getvalue() and "FAIL" not in out.getvalue()
