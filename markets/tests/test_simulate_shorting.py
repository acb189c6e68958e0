"""`manage.py simulate --short-limit`: shorting traders, prices that jump, a liquidation run after every
tick predicted by the reference model, the haircut at settlement; and the run stops when the services and
the model disagree on a margin refusal or a deleveraging."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from ledger.models import Event
from markets import audit
from markets.domain import margin as rules
from markets.models import Payout, Settlement
from markets.services import margin as service_margin
from markets.simulation import SimParams, Simulation, SimulationError

pytestmark = pytest.mark.django_db

SHORTING = {"short_limit": "0.5", "margin_band": "0.3", "initial_margin": "0.3"}


def test_a_shorting_run_refuses_liquidates_and_haircuts_as_the_model_says():
    result = Simulation(SimParams(seed=9, steps=300, **SHORTING)).run()
    sid = "sim-9"
    # Refusals the model predicted and the services gave: past the short limit, and the margin rule.
    assert result.codes["short_limit"] > 0 and result.codes["margin"] > 0
    # Jumps in the prices liquidated positions; each deleveraging was the model's plan, unit for unit.
    assert result.jumps > 0 and result.liquidations == 2 and result.deleveraged_units > 0
    types = list(Event.objects.filter(stream=f"session-{sid}").values_list("type", flat=True))
    assert types.count("PositionLiquidated") == types.count("AutoDeleveraged") == 2
    assert (
        result.actions["liquidate"].attempted == result.ticks_stored - 2
    )  # after every tick but the first and the fixing
    # The fixing squeezed the most-shorted leg outside the box: the haircut kept every payout >= 0, sum q.S.
    settlement = Settlement.objects.get(session_id=sid)
    assert settlement.deficit and result.deficit and settlement.total == settlement.expected
    payouts = list(Payout.objects.filter(session_id=sid))
    assert all(not p.amount.startswith("-") for p in payouts) and any(p.gross.startswith("-") for p in payouts)
    assert audit.verify_session(sid).ok and result.verified


def test_a_shorting_session_with_batch_auctions_buys_back_then_deleverages_as_the_model_says():
    result = Simulation(SimParams(seed=1, steps=500, mechanism="both", session_id="sb", **SHORTING)).run()
    assert result.buy_backs == result.liquidations == 2 and result.deleveraged_units > 0
    events = [(e.type, e.data) for e in Event.objects.filter(stream="session-sb")]
    buy_backs = [d for t, d in events if t == "OrderPlaced" and d.get("liquidation")]
    after_batch = [d for t, d in events if t == "AutoDeleveraged" and "after_batch" in d]
    assert buy_backs and after_batch and all(d["batches"] == 1 for d in buy_backs)
    assert result.codes["margin"] > 0 and result.fills > 0 and result.verified


def test_the_command_takes_shorting_and_reports_it():
    out = io.StringIO()
    call_command("simulate", "--seed", "9", "--steps", "120", "--short-limit", "0.5", "--margin-band", "0.3",
                 "--quiet", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "shorting (short_limit 0.5, margin_band 0.3)" in text
    assert re.search(r"^\s+liquidate\s+\d+\s+\d+\s+0\s+0$", text, re.M)
    assert re.search(
        r"^\s+shorting\s+\d+ price jumps, \d+ liquidated \(\d+ bankrupt, \d+ by buy-back orders\)", text, re.M
    )
    assert re.search(r"^\s+haircut\s+(none|deficit [\d.]+, factor \d+/\d+)", text, re.M)
    assert "verify_session ok" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--short-limit", "2"], "--short-limit: short_limit must be above 0 and at most 1"),
        (["--short-limit", "0.2", "--margin-band", "x"], "--short-limit: margin_band must be a decimal"),
    ],
)
def test_bad_shorting_parameters_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate", *args, "--quiet", stdout=io.StringIO())


def test_a_service_that_skips_the_margin_rule_is_caught(monkeypatch):
    """The model predicts `margin` on its own: with the services' rule switched off, the run stops at the
    first accept or quote the model says must be refused."""
    monkeypatch.setattr(rules, "check_move", lambda *args, **kwargs: None)
    with pytest.raises(SimulationError) as caught:
        Simulation(SimParams(seed=9, steps=300, **SHORTING)).run()
    assert "should have been refused with one of ['margin']" in str(caught.value)


def test_a_liquidation_that_does_not_deleverage_is_caught(monkeypatch):
    monkeypatch.setattr(service_margin, "deleverage", lambda *args, **kwargs: None)
    with pytest.raises(SimulationError) as caught:
        Simulation(SimParams(seed=9, steps=300, **SHORTING)).run()
    assert "liquidation run" in str(caught.value)
