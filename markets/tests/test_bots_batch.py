"""The bots in sessions that trade by batch auction (`markets.bots.auction`): makers keep two-sided limit
orders around the fair rate within what they may give and refresh them each batch (cancelling, before the
cut, those the prices moved off), takers cross at or through the fair rate, the scheduler's cut fills them,
in a session with both the bots trade by RFQ and by order, and the same seed and prices give the same run."""

from __future__ import annotations

import datetime as dt
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import clock
from markets import audit, pricing, projections, services
from markets.bots import Crew, Params, auction, join_bots
from markets.bots.policy import Market, OrderView, leg_floor
from markets.models import Batch, Holding, Order, Session, Trade
from markets.tests.test_bots import LEGS, PRICES, T0, all_holdings, replay_prices, run_bots, tick_all

BATCH_SECONDS = 10


def auction_session(users, sid: str, makers: int, takers: int, mechanism: str = "batch") -> Session:
    """A session trading by batch auction (cuts every 10 s), the bots joined before it opens."""
    services.create_session(
        users["org"], session_id=sid, legs=list(LEGS), q=[100, 60, 80, 120], mechanism=mechanism,
        batch_seconds=BATCH_SECONDS,
    )  # fmt: skip
    join_bots(sid, makers, takers)
    return services.open_session(users["org"], sid)


def cut_due(sid: str) -> Batch | None:
    """What the scheduler does when the clock reaches the session's next cut."""
    return services.clear_batch(None, sid)


def _own_orders(draw, me: str, n: int) -> list[OrderView]:
    orders = []
    for i in range(n):
        give, get = draw(st.lists(st.sampled_from(LEGS), min_size=2, max_size=2, unique=True))
        limit = draw(st.integers(1, 10**10))
        orders.append(OrderView(i + 1, me, give, get, draw(st.integers(10**4, 10**9)), limit, T0))
    return orders


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_makers_place_two_sided_orders_around_the_fair_rate_within_what_they_may_give(data):
    me = "bot-maker-1"
    params = Params(order_pairs=data.draw(st.integers(0, 6)))
    prices = {leg: data.draw(st.integers(10**5, 10**10)) for leg in LEGS}  # 0.1 to 10,000 a unit
    holding = {leg: data.draw(st.integers(0, 10**12)) for leg in LEGS}
    initial = {leg: data.draw(st.integers(0, 10**12)) for leg in LEGS}
    mine = _own_orders(data.draw, me, data.draw(st.integers(0, 4)))
    max_orders = data.draw(st.integers(1, 8))
    min_order = data.draw(st.sampled_from([1, 10**4, 10**6]))
    cut = T0 + dt.timedelta(seconds=data.draw(st.integers(-5, 5)))
    market = Market(
        LEGS, prices, (), (), {me: holding}, {me: initial}, mechanism="batch", orders=tuple(mine),
        max_orders=max_orders, min_order=min_order, next_cut=cut,
    )  # fmt: skip
    intents = auction.maker_orders(me, params, market, random.Random(data.draw(st.integers(0, 2**32))), T0)
    if T0 >= cut:  # from the cut's instant until it is recorded the book belongs to the batch being cleared
        assert intents == []
        return
    cancelled = {i.ref for i in intents if i.kind == "cancel_order"}
    placed = [i for i in intents if i.kind == "order"]

    def spread_of(limit: int, give: str, get: str) -> Fraction:
        """How far above the fair rate (the oracle-implied rate, markets.pricing) a limit asks, in bps."""
        fair = pricing.implied_rate(prices[give], prices[get])
        return Fraction(limit - fair, fair) * 10_000

    tick = {o.id: Fraction(10_000, pricing.implied_rate(prices[o.give_leg], prices[o.get_leg])) for o in mine}
    for order in mine:  # cancelled exactly when the prices moved it off the maker's spreads
        inside = params.spread_min_bps <= spread_of(order.limit, order.give_leg, order.get_leg)
        inside = (
            inside and spread_of(order.limit, order.give_leg, order.get_leg) < params.spread_max_bps + tick[order.id]
        )
        assert (order.id in cancelled) == (not inside)
    pairs: dict[frozenset, list] = {}
    for i in placed:
        # It asks more than the fair rate by its spread (rounded up): it sells no cheaper than the oracle says.
        spread = spread_of(i.rate, i.give_leg, i.get_leg)
        step = Fraction(10_000, pricing.implied_rate(prices[i.give_leg], prices[i.get_leg]))
        assert params.spread_min_bps <= spread < params.spread_max_bps + step
        assert i.quantity >= max(min_order, 10**4) and i.quantity % 10**4 == 0
        pairs.setdefault(frozenset((i.give_leg, i.get_leg)), []).append(i)
    kept = [o for o in mine if o.id not in cancelled]
    busy = {frozenset((o.give_leg, o.get_leg)) for o in kept}
    assert len(pairs) <= max(0, params.order_pairs - len(busy))  # orders on order_pairs pairs, no more
    assert len(kept) + len(placed) <= max(max_orders, len(kept))
    assert not pairs.keys() & {frozenset((o.give_leg, o.get_leg)) for o in kept}, "a pair with orders is kept"
    for leg in LEGS:  # never beyond what it may give above its floor
        given = sum(i.quantity for i in placed if i.give_leg == leg)
        assert given == 0 or given <= holding[leg] - leg_floor(initial[leg], params.floor_pct)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_takers_place_one_order_at_a_time_at_or_through_the_fair_rate(data):
    me = "bot-taker-1"
    params = Params(order_chance_pct=100, cross_max_bps=data.draw(st.integers(0, 500)))
    prices = {leg: data.draw(st.integers(10**5, 10**10)) for leg in LEGS}
    holding = {leg: data.draw(st.integers(0, 10**12)) for leg in LEGS}
    resting = _own_orders(data.draw, me, data.draw(st.integers(0, 1)))
    min_order = data.draw(st.sampled_from([1, 10**4, 10**7]))
    market = Market(
        LEGS, prices, (), (), {me: holding}, {me: holding}, mechanism="batch", orders=tuple(resting),
        max_orders=20, min_order=min_order, next_cut=T0 + dt.timedelta(seconds=5),
    )  # fmt: skip
    intents = auction.taker_orders(me, params, market, random.Random(data.draw(st.integers(0, 2**32))), T0)
    if resting:
        assert intents == []
        return
    for i in intents:
        fair = pricing.implied_rate(prices[i.give_leg], prices[i.get_leg])
        assert i.kind == "order" and fair * (10_000 - params.cross_max_bps) // 10_000 <= i.rate <= fair
        assert max(min_order, 10**4) <= i.quantity <= holding[i.give_leg] * params.size_max_pct // 100
    assert len(intents) <= 1


def reserved_within_held(sid: str) -> None:
    for h in Holding.objects.filter(session_id=sid):
        assert 0 <= h.reserved <= h.qty, (h.participant_id, h.leg)


@pytest.mark.django_db
def test_in_a_batch_session_makers_ask_takers_cross_refresh_and_the_cut_fills_them(users):
    with clock.frozen(T0):
        auction_session(users, "ba", 2, 3)
        tick_all("ba", clock.now())
        crew = Crew("ba", 2, 3, seed=3, params=Params(order_chance_pct=100))
        actions = crew.step(clock.now())
        assert all(a.ok for a in actions), [a.line() for a in actions if not a.ok]
        kinds = {(a.intent.bot.rsplit("-", 1)[0], a.intent.kind) for a in actions}
        assert kinds == {("bot-taker", "order"), ("bot-maker", "order")}, "a batch session takes no RFQ"
        placed = list(Order.objects.filter(session_id="ba").select_related("participant"))
        assert len(placed) == len(actions)
        for o in placed:  # makers ask the fair rate plus a spread; takers cross at or through it
            fair = pricing.implied_rate(PRICES[o.give_leg], PRICES[o.get_leg])
            if o.participant.username.startswith("bot-maker"):
                assert fair < o.limit_rate <= fair * 10_060 // 10_000 + 1
            else:
                assert fair * 9_900 // 10_000 <= o.limit_rate <= fair
        makers = [o for o in placed if o.participant.username.startswith("bot-maker")]
        assert {(o.give_leg, o.get_leg) for o in makers} == {(o.get_leg, o.give_leg) for o in makers}, "two-sided"
        line = next(a for a in actions if a.intent.kind == "order").line()
        assert " order " in line and " at limit " in line and " -> order " in line
        reserved_within_held("ba")
        # Nothing moved: each maker's pairs are covered, each taker has its order resting.
        assert crew.step(clock.now()) == []

        # AAPL rises 2% before the cut: the makers' orders on AAPL are stale, cancelled and placed again.
        clock.advance(2)
        tick_all("ba", clock.now(), PRICES | {"AAPL": PRICES["AAPL"] * 102 // 100})
        again = crew.step(clock.now())
        assert all(a.ok for a in again), [a.line() for a in again if not a.ok]
        cancelled = [a.intent for a in again if a.intent.kind == "cancel_order"]
        assert cancelled and all("AAPL" in (i.give_leg, i.get_leg) for i in cancelled)
        assert {o.id for o in makers if "AAPL" in (o.give_leg, o.get_leg)} == {i.ref for i in cancelled}
        assert all(a.intent.bot.startswith("bot-maker") for a in again)
        before = all_holdings("ba")

        clock.set_time(T0 + dt.timedelta(seconds=BATCH_SECONDS))
        assert crew.step(clock.now()) == []  # the cut's instant: the book belongs to the batch being cleared
        cut = cut_due("ba")
        assert cut.outcome == "cleared" and cut.filled > 0
        assert all_holdings("ba") != before
        traded = {f.participant.username for f in cut.fills.select_related("participant")}
        assert any(n.startswith("bot-maker") for n in traded) and any(n.startswith("bot-taker") for n in traded)
        assert not Order.objects.filter(session_id="ba", status="resting").exists()  # each lived one batch
        reserved_within_held("ba")
        # The next batch: the makers place their two-sided orders again, the takers cross again.
        refreshed = crew.step(clock.now())
        assert {a.intent.kind for a in refreshed} == {"order"} and all(a.ok for a in refreshed)
        assert {a.intent.bot for a in refreshed} >= {"bot-maker-1", "bot-maker-2"}
    assert projections.diff(projections.snapshot("ba"), projections.rebuild("ba")) == []
    assert audit.verify_session("ba").ok


def _batch_run(sid: str, users, seed: int, mechanism: str = "batch", steps: int = 24) -> tuple[list[tuple], dict]:
    """Two steps a second on a fixed price path; the scheduler cuts every 10 s."""
    with clock.frozen(T0):
        auction_session(users, sid, 2, 3, mechanism)
        crew = Crew(sid, 2, 3, seed=seed)
        keys = []
        for step in range(steps):
            tick_all(sid, clock.now(), replay_prices(step))
            keys += [a.key() for a in crew.step(clock.now())]
            clock.advance(1)
            cut = cut_due(sid)
            if cut is not None:
                keys.append(("cut", cut.number, cut.outcome, cut.orders, cut.filled, tuple(sorted(cut.prices.items()))))
    return keys, all_holdings(sid)


@pytest.mark.django_db
def test_in_batch_sessions_the_same_seed_and_prices_give_the_same_orders_cuts_and_holdings(users):
    first, holdings = _batch_run("bd-a", users, seed=7)
    again, holdings_again = _batch_run("bd-b", users, seed=7)
    assert first == again and holdings == holdings_again
    assert {k[1] for k in first if k[0] != "cut"} >= {"order", "cancel_order"}
    cuts = [k for k in first if k[0] == "cut"]
    assert len(cuts) == 2 and any(c[2] == "cleared" and c[4] > 0 for c in cuts)
    other, other_holdings = _batch_run("bd-c", users, seed=8)
    assert other != first and other_holdings != holdings
    for sid in ("bd-a", "bd-b", "bd-c"):
        reserved_within_held(sid)
        assert audit.verify_session(sid).ok


@pytest.mark.django_db
def test_in_a_session_with_both_the_bots_trade_by_rfq_and_by_order(users):
    keys, _ = _batch_run("both", users, seed=5, mechanism="both")
    kinds = {k[1] for k in keys if k[0] != "cut"}
    assert {"rfq", "quote", "accept", "order"} <= kinds, kinds
    assert Trade.objects.filter(session_id="both").exists() and Batch.objects.filter(session_id="both").exists()
    reserved_within_held("both")
    assert audit.verify_session("both").ok


@pytest.mark.django_db
def test_run_bots_trades_a_batch_session_and_says_who_cuts_it(users):
    clock.set_time(None)
    services.create_session(
        users["org"], session_id="bs", legs=list(LEGS), q=[100, 60, 80, 120], mechanism="batch", batch_seconds=60
    )
    tick_all("bs", clock.now())
    out = run_bots("--session", "bs", "--makers", "1", "--takers", "2", "--steps", "1", "--interval", "0.01",
                   "--seed", "4", "--open")  # fmt: skip
    assert "session bs trades by batch auction: its orders clear at each cut" in out
    assert "bot-maker-1 order " in out and " at limit " in out, out
    assert Order.objects.filter(session_id="bs", participant__username="bot-maker-1").exists()
