"""A real split replayed: NVIDIA's 10-for-1 of 2024-06-10 (oracle/data/nvda_split_2024.csv, prices as
published; the split and the $0.01 dividend in nvda_split_2024_actions.csv) fed by a real run_oracle process
with `--actions`, the session settled by hand after the dividend, and every payout checked against a computation
written here from the two raw files with csv and Fraction alone."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from django.core.management import call_command

from conftest import create_demo
from ledger import clock
from markets.models import CorporateAction, Payout, Session
from markets.tests.test_run_oracle_process import env, oracle  # noqa: F401 (env: a fixture)
from oracle.models import Tick

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DATA = Path(__file__).resolve().parents[2] / "oracle" / "data"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def expected_payout_each() -> Fraction:
    """One of four equal holders of 100 NVDA and 1,000 USD, from the raw files: the split multiplies its 25
    NVDA by the ratio, the dividend pays amount x units, the payout is x . S at the last row plus the cash."""
    with open(DATA / "nvda_split_2024.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    with open(DATA / "nvda_split_2024_actions.csv", newline="") as handle:
        actions = list(csv.DictReader(handle))
    nvda, cash = Fraction(25), Fraction(0)
    for action in actions:
        if action["kind"] == "split":
            nvda *= Fraction(action["ratio"])
        elif action["kind"] == "dividend":
            cash += nvda * Fraction(action["amount"])
    return nvda * Fraction(last["NVDA"]) + 250 * Fraction(last["USD"]) + cash


def test_nvidias_split_and_dividend_replayed_settle_as_computed_from_the_raw_files(users, env, settings):  # noqa: F811
    settings.ALLOW_MANUAL_SETTLE = True
    create_demo(users, "nvda", legs=["NVDA", "USD"], q=[100, 1000])
    args = ("--session-id", "nvda", "--mode", "replay", "--csv", "nvda_split_2024.csv", "--tick-ms", "1500")
    proc = oracle(*args, "--actions", "nvda_split_2024_actions.csv", env=env)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "actions: 2 scheduled" in out and "nvda action 1 applied" in out, out
    # The dividend's cut falls just after the last row: the scheduler applies it once its time has come
    # (`settle --due`, as cron would), then the organiser settles at the last price.
    dividend = CorporateAction.objects.get(session_id="nvda", number=2)
    time.sleep(max(0.0, (dividend.effective_at - clock.now()).total_seconds()) + 0.05)
    call_command("settle", "--due", stdout=io.StringIO())
    settled = io.StringIO()
    call_command("settle", "nvda", stdout=settled)  # by hand: the last tick, at or before now
    assert "settled nvda" in settled.getvalue(), settled.getvalue()
    session = Session.objects.get(id="nvda")
    assert session.q == [1000 * 10**6, 1000 * 10**6]
    assert list(CorporateAction.objects.filter(session_id="nvda").values_list("status", flat=True)) == ["applied"] * 2
    # The ticks as stored: the file's own prices, one level before the split and one after.
    assert list(
        Tick.objects.filter(session_id="nvda", symbol="NVDA").order_by("at").values_list("price", flat=True)
    ) == [1_224_400_000, 1_208_880_000, 120_380_000, 121_790_000]
    assert session.settlement.prices["NVDA"] == 121_790_000  # the last price, after the split
    for payout in Payout.objects.filter(session_id="nvda"):
        assert Fraction(Decimal(payout.amount)) == expected_payout_each()
    verify = io.StringIO()
    call_command("verify_ledger", stdout=verify)
    assert "FAIL" not in verify.getvalue() and "nvda" in verify.getvalue()
