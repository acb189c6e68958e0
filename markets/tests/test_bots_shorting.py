"""The bots in a session with bounded shorting: a taker may give beyond what it holds, within its short
limit and what the pool's cap leaves, and never sends a trade the margin rule would refuse (it judges
with the same pure rule, `markets.domain.margin`); a crew trades such a session through the services,
prices jumping and liquidation running after every tick, without one `margin` or `short_limit` refusal."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import clock
from markets import audit, domain, services
from markets.bots import shorting
from markets.bots.crew import Crew, join_bots
from markets.bots.policy import Market, Params, QuoteView, RfqView, Taker
from markets.domain import DomainError
from markets.domain import margin as rules
from markets.models import Holding
from markets.tests.test_bots import LEGS, PRICES, T0, tick_all

U = domain.QTY_SCALE
SETTINGS = rules.margin_settings("0.3", "0.15", "0.1")
Q = [100 * U, 60 * U, 80 * U, 120 * U]
CAPS = dict(zip(LEGS, SETTINGS.caps(Q), strict=True))
EAGER = Params(rfq_chance_pct=100, accept_chance_pct=100, short_chance_pct=100)
# Bold takers in a wide box: without judging the margin they would be refused (the test checks that too).
CREW = Params(rfq_chance_pct=90, accept_chance_pct=90, short_chance_pct=80, size_min_pct=30, size_max_pct=100)


def market(held: dict[str, int], *, gross: dict[str, int] | None = None, prices=PRICES, rfqs=(), quotes=()) -> Market:
    return Market(
        LEGS, dict(prices), tuple(rfqs), tuple(quotes), {"bot-taker-1": held}, {"bot-taker-1": dict(held)},
        short_caps=CAPS, gross_short=gross or {}, margin=SETTINGS,
    )  # fmt: skip


def rule_refuses(m: Market, who: str, change: dict[str, int]) -> bool:
    """What the services would decide, from the domain's rules alone."""
    before = [m.holdings[who].get(leg, 0) for leg in LEGS]
    after = [x + change.get(leg, 0) for x, leg in zip(before, LEGS, strict=True)]
    caps = [CAPS[leg] for leg in LEGS]
    gross = [m.gross_short.get(leg, 0) - max(0, -b) + max(0, -a) for leg, b, a in zip(LEGS, before, after, strict=True)]
    try:
        rules.check_bounds(after, caps, LEGS)
        rules.check_gross(gross, caps, LEGS)
        rules.check_move("x", before, after, [m.prices[leg] for leg in LEGS], SETTINGS, LEGS)
    except DomainError:
        return True
    return False


holding = st.integers(-30 * U, 40 * U)


@settings(max_examples=200, deadline=None)
@given(
    held=st.lists(holding, min_size=4, max_size=4),
    others_short=st.lists(st.integers(0, 30 * U), min_size=4, max_size=4),
    seed=st.integers(0, 10**6),
)
def test_a_taker_asks_within_its_limit_and_the_margin_rule(held, others_short, seed):
    row = dict(zip(LEGS, held, strict=True))
    gross = {leg: min(CAPS[leg], max(0, -row[leg]) + extra) for leg, extra in zip(LEGS, others_short, strict=True)}
    m = market(row, gross=gross)
    intents = Taker("bot-taker-1", EAGER).plan(m, random.Random(seed), T0)
    for intent in intents:
        assert intent.kind == "rfq"
        assert 0 < intent.quantity <= shorting.may_give(m, "bot-taker-1", intent.give_leg)
        rate = (PRICES[intent.give_leg] * domain.RATE_SCALE * (10_000 - EAGER.spread_max_bps)) // (
            PRICES[intent.get_leg] * 10_000
        )
        receive = domain.trade_receive(intent.quantity, rate)
        assert not rule_refuses(m, "bot-taker-1", {intent.give_leg: -intent.quantity, intent.get_leg: receive})


def test_a_taker_goes_short_within_its_limit():
    m = market({"AAPL": 10 * U, "NVDA": 15 * U, "META": 20 * U, "ORCL": 30 * U})
    sizes = [
        i.quantity
        for seed in range(40)
        for i in Taker("bot-taker-1", EAGER).plan(m, random.Random(seed), T0)
        if i.give_leg == "AAPL"
    ]
    assert sizes and max(sizes) > 10 * U >= 0 and max(sizes) <= 10 * U + CAPS["AAPL"]
    # The pool already short of AAPL up to its cap: nobody may go short of it any more.
    full = market({"AAPL": 10 * U, "NVDA": 15 * U, "META": 20 * U, "ORCL": 30 * U}, gross={"AAPL": CAPS["AAPL"]})
    assert shorting.may_give(full, "bot-taker-1", "AAPL") == 10 * U


def test_a_taker_skips_a_quote_the_margin_rule_would_refuse():
    row = {"AAPL": -30 * U, "NVDA": 5 * U, "META": 20 * U, "ORCL": 10 * U}  # W 4284, IM 690
    rfq = RfqView(1, "bot-taker-1", "META", "ORCL", 15 * U, T0)
    fair = PRICES["META"] * domain.RATE_SCALE // PRICES["ORCL"]
    poor = QuoteView(7, 1, "mm", fair // 20, T0 + dt.timedelta(seconds=30))  # gives 5% of the value back
    good = QuoteView(8, 1, "mm", fair, T0 + dt.timedelta(seconds=30))
    for quotes, expect in (([poor], []), ([good], [8])):
        m = market(row, rfqs=[rfq], quotes=quotes)
        refused = rule_refuses(
            m, "bot-taker-1", {"META": -15 * U, "ORCL": domain.trade_receive(15 * U, quotes[0].rate)}
        )
        accepted = [i.ref for i in Taker("bot-taker-1", EAGER).plan(m, random.Random(1), T0) if i.kind == "accept"]
        assert accepted == expect and refused == (not expect)


@pytest.mark.django_db
def test_a_crew_trades_a_shorting_session_without_a_margin_or_limit_refusal(users):
    sid = "bot-short"
    with clock.frozen(T0):
        services.create_session(users["org"], session_id=sid, legs=list(LEGS), q=[100, 60, 80, 120],
                                short_limit="0.5", margin_band="0.3", initial_margin="0.5")  # fmt: skip
        join_bots(sid, 2, 3)
        services.open_session(users["org"], sid)
        crew = Crew(sid, 2, 3, seed=5, params=CREW)
        prices, rng, outcomes, shorted = dict(PRICES), random.Random(3), [], set()
        for step in range(60):
            if step % 5 == 4:  # now and then a leg jumps (up to 80% either way)
                leg = rng.choice(LEGS)
                prices[leg] = prices[leg] * rng.choice([2, 5, 8, 12, 18]) // 10
            tick_all(sid, clock.now(), prices)
            services.liquidate_due_sessions()
            outcomes += [a.outcome for a in crew.step(clock.now())]
            shorted |= set(
                Holding.objects.filter(session_id=sid, qty__lt=0).values_list("participant__username", flat=True)
            )
            clock.advance(2)
    assert outcomes.count("ok") > 20 and crew.trades > 5
    assert {"margin", "short_limit", "insufficient_inventory"}.isdisjoint(outcomes), sorted(set(outcomes))
    assert any(name.startswith("bot-taker-") for name in shorted), "no bot went short"
    assert audit.verify_session(sid).ok


@pytest.mark.django_db
def test_a_crew_trades_a_shorting_session_with_batch_auctions_without_a_margin_or_limit_refusal(users):
    sid = "bot-short-both"
    with clock.frozen(T0):
        services.create_session(users["org"], session_id=sid, legs=list(LEGS), q=[100, 60, 80, 120],
                                short_limit="0.5", margin_band="0.3", initial_margin="0.5", mechanism="both",
                                batch_seconds=10)  # fmt: skip
        join_bots(sid, 2, 3)
        services.open_session(users["org"], sid)
        crew = Crew(sid, 2, 3, seed=6, params=CREW)
        prices, rng, outcomes, kinds = dict(PRICES), random.Random(4), [], set()
        for step in range(60):
            if step % 5 == 4:
                leg = rng.choice(LEGS)
                prices[leg] = prices[leg] * rng.choice([2, 5, 8, 12, 18]) // 10
            tick_all(sid, clock.now(), prices)
            services.run_due()  # what run_oracle does every tick: liquidation, then the due cut
            actions = crew.step(clock.now())
            outcomes += [a.outcome for a in actions]
            kinds |= {a.intent.kind for a in actions if a.ok}
            clock.advance(3)
    assert {"order", "accept"} <= kinds, kinds
    assert {"margin", "short_limit", "insufficient_available"}.isdisjoint(outcomes), sorted(set(outcomes))
    assert audit.verify_session(sid).ok
