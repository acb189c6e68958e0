"""Bots and the fixing: inside a timed session's fixing window a maker prices on what the rule would make
now (the settlement pays at the fixing), not on the last tick; before the window, or under `last`, on
the latest prices as always."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from conftest import create_demo
from ledger import clock
from markets import domain
from markets.bots import Params
from markets.bots.market import read_market
from markets.bots.policy import Maker, Market, RfqView
from oracle.models import Tick

T1 = dt.datetime(2030, 5, 6, 15, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=1)
U = 10**6
ME = "bot-maker-1"


def test_a_maker_quotes_on_the_fixing_so_far_inside_the_window():
    rfq = RfqView(1, "alice", "AAPL", "NVDA", 10 * U, T1)
    held = {ME: {"NVDA": 1000 * U}}
    latest = Market(("AAPL", "NVDA"), {"AAPL": 230 * U, "NVDA": 135 * U}, (rfq,), (), held, held)
    windowed = Market(
        ("AAPL", "NVDA"), {"AAPL": 230 * U, "NVDA": 135 * U}, (rfq,), (), held, held, fixing={"AAPL": 200 * U}
    )
    flat = Params(spread_min_bps=0, spread_max_bps=0)
    (before,) = Maker(ME, flat).plan(latest, random.Random(1))
    (inside,) = Maker(ME, flat).plan(windowed, random.Random(1))
    assert before.rate == 230 * domain.RATE_SCALE // 135
    assert inside.rate == 200 * domain.RATE_SCALE // 135  # AAPL at its VWAP so far, NVDA at its last tick


@pytest.mark.django_db
def test_the_market_a_bot_reads_carries_the_fixing_so_far_only_inside_the_window(users):
    clock.set_time(T1)
    session = create_demo(users, "win", t2=T2, end_mode="timed", fixing_rule={"rule": "vwap", "window": 300})
    for seconds, price, volume in ((-400, 150, 5), (-200, 100, 10), (-100, 110, 30)):
        Tick.objects.bulk_create(
            Tick(
                session_id="win", symbol=leg, at=T2 + dt.timedelta(seconds=seconds), price=price * U, volume=volume * U
            )
            for leg in session.legs
        )
    assert read_market(session, [], T2 - dt.timedelta(seconds=301)).fixing == {}  # before the window
    inside = read_market(session, [], T2 - dt.timedelta(seconds=50))
    assert inside.fixing == dict.fromkeys(session.legs, 107_500_000)  # (100 x 10 + 110 x 30) / 40
    assert inside.prices["AAPL"] == 110 * U  # the latest tick is still what the margin rule reads
