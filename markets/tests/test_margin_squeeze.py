"""A short squeeze, end to end through the services: alice and bob are short AAPL, AAPL jumps +60% in one
tick, and both are liquidated. By RFQ they are deleveraged at once; in a batch session their shorts are
offered back in the next batch first, and what that leaves short (all of it without a seller, a remainder
with one) is deleveraged after the cut. Each time the log names the figures (W, the ranking, every unit
moved and paid), nobody is paid below zero, the payouts sum to q.S exactly, and the log verifies.

The allocation is custom so that the shorts are large against the cushion behind them: alice holds only
60 ORCL (1,200) and sells 25 AAPL short (2,500): W = 0.85 x 3,700 - 1.15 x 2,500 = 270 >= IM 125. At AAPL
160, W = 3,145 - 4,600 = -1,455, and her 185 ORCL (3,700) are worth less than the short (4,000): bankrupt.
bob holds 80 ORCL and sells 20 short: W = 760 before, -620 after, and his 180 ORCL (3,600) cover the
short (3,200): he pays 160 ORCL and keeps 20."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, domain, projections, services
from markets.domain import margin as rules
from markets.models import Fill, Participant, Payout, Settlement
from oracle.models import Tick

pytestmark = pytest.mark.django_db

U = 10**6
T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
LEGS = ["AAPL", "NVDA", "META", "ORCL"]
Q = [100, 60, 80, 500]
ALLOCATION = {
    "alice": ["0", "0", "0", "60"],
    "bob": ["0", "0", "0", "80"],
    "mm": ["60", "30", "40", "200"],
    "mm2": ["40", "30", "40", "160"],
}
START = {"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20}
SQUEEZED = START | {"AAPL": 160}  # +60% in one tick


def tick(sid: str, prices: dict[str, int], at: dt.datetime) -> None:
    for leg, price in prices.items():
        Tick.objects.create(session_id=sid, symbol=leg, at=at, price=price * U, source="test")


def squeeze(users, sid: str, **kwargs) -> None:
    """The session opened with the custom allocation, both shorts sold at the oracle's rate (5 ORCL per
    AAPL), then the +60% tick at T0 + 2 s."""
    clock.set_time(T0)
    create_demo(
        users, sid, open_it=False, q=Q, allocation_mode="custom", short_limit="0.5", margin_band="0.15",
        initial_margin="0.05", **kwargs,
    )  # fmt: skip
    services.open_session(users["org"], sid, allocation=ALLOCATION)
    tick(sid, START, T0)
    clock.set_time(T0 + dt.timedelta(seconds=1))
    for taker, maker, units in (("alice", "mm", "25"), ("bob", "mm2", "20")):
        rfq = services.request_rfq(users[taker], sid, "AAPL", "ORCL", units)
        services.accept_quote(users[taker], services.provide_quote(users[maker], rfq.id, "5").id)
    x = projections.holdings_by_user(sid)
    assert x[users["alice"].pk] == [-25 * U, 0, 0, 185 * U] and x[users["bob"].pk] == [-20 * U, 0, 0, 180 * U]
    prices = [START[leg] * U for leg in LEGS]
    margin = rules.MarginSettings("0.5", "0.15", "0.05")
    assert rules.assess(x[users["alice"].pk], prices, margin).w == 270 * 10**12  # >= IM 125: accepted
    clock.set_time(T0 + dt.timedelta(seconds=2))
    tick(sid, {"AAPL": 160}, clock.now())


def log(sid: str, type_: str) -> list[dict]:
    return [e.data for e in Event.objects.filter(stream=f"session-{sid}", type=type_).order_by("seq")]


def money(units: int) -> str:
    return rules.money_text(Fraction(units * 10**12))


def expected_liquidations(users) -> list[dict]:
    alice, bob = users["alice"].pk, users["bob"].pk
    return [
        {"user_id": alice, "holdings": [-25 * U, 0, 0, 185 * U], "W": money(-1455), "requirement": money(200)},
        {"user_id": bob, "holdings": [-20 * U, 0, 0, 180 * U], "W": money(-620), "requirement": money(160)},
    ]


def expected_deleveraging(users) -> list[dict]:
    """alice first (the lower id): AAPL's holders ranked by units (mm 85, mm2 60), 25 taken from mm, who
    gets all her 185 ORCL (bankrupt). Then bob: mm and mm2 hold 60 each (the lower id first), 20 taken
    from the first, paid ceil(180 x 3,200 / 3,600) = 160 ORCL."""
    alice, bob, mm, mm2 = (users[n].pk for n in ("alice", "bob", "mm", "mm2"))
    first = min(mm, mm2)
    return [
        {
            "user_id": alice,
            "ranking": {"AAPL": [mm, mm2]},
            "moves": [{"from": mm, "leg": "AAPL", "units": 25 * U}],
            "paid": {str(mm): {"ORCL": 185 * U}},
            "bankrupt": True,
        },
        {
            "user_id": bob,
            "ranking": {"AAPL": sorted([mm, mm2])},
            "moves": [{"from": first, "leg": "AAPL", "units": 20 * U}],
            "paid": {str(first): {"ORCL": 160 * U}},
            "bankrupt": False,
        },
    ]


def settle_and_check(users, sid: str) -> None:
    """Nobody is left short; the settlement at the squeezed prices pays nobody below zero and sums to q.S
    exactly; verify_ledger redoes every liquidation; replay rebuilds the projection."""
    x = projections.holdings_by_user(sid)
    assert all(v >= 0 for row in x.values() for v in row), x
    assert set(
        Participant.objects.filter(session_id=sid, liquidated_at__isnull=False).values_list("user_id", flat=True)
    ) == {users["alice"].pk, users["bob"].pk}
    services.settle_session(users["org"], sid, prices={leg: str(p) for leg, p in SQUEEZED.items()})
    paid = [Decimal(p.amount) for p in Payout.objects.filter(session_id=sid)]
    assert all(p >= 0 for p in paid)
    q_s = domain.payout([v * U for v in Q], [SQUEEZED[leg] * U for leg in LEGS])
    assert sum(paid) == Decimal(domain.money_str(q_s)) == Decimal(Settlement.objects.get(session_id=sid).total)
    assert audit.verify_session(sid).problems == []
    assert projections.diff(projections.snapshot(sid), projections.rebuild(sid)) == []


def test_by_rfq_both_shorts_are_liquidated_and_deleveraged_at_once(users):
    squeeze(users, "sq")
    clock.set_time(T0 + dt.timedelta(seconds=3))
    assert services.liquidate_due_sessions() == [("sq", f"liquidated user(s) {users['alice'].pk}, {users['bob'].pk}")]
    liquidated = log("sq", "PositionLiquidated")
    for got, want in zip(liquidated, expected_liquidations(users), strict=True):
        assert {k: got[k] for k in want} == want
        assert got["method"] == "deleverage" and got["margin_band"] == "0.15"
        assert got["prices"]["AAPL"] == 160 * U and set(got["ticks"]) == set(LEGS)
    adl = log("sq", "AutoDeleveraged")
    for got, want in zip(adl, expected_deleveraging(users), strict=True):
        assert {k: got[k] for k in want} == want and "after_batch" not in got
    types = [e.type for e in Event.objects.filter(stream="session-sq").order_by("seq")]
    assert types[-4:] == ["PositionLiquidated", "AutoDeleveraged", "PositionLiquidated", "AutoDeleveraged"]
    x = projections.holdings_by_user("sq")
    assert x[users["alice"].pk] == [0, 0, 0, 0] and x[users["bob"].pk] == [0, 0, 0, 20 * U]
    assert services.liquidate_due_sessions() == []  # once is enough
    settle_and_check(users, "sq")


def buy_back_batch(users, sid: str) -> list[dict]:
    """The squeeze in a session trading by RFQ and batch auction (10 s cuts): both are liquidated with
    buy-back orders (ORCL for AAPL at the band's edge, one batch each) and nothing is deleveraged yet."""
    squeeze(users, sid, mechanism="both", batch_seconds=10)
    clock.set_time(T0 + dt.timedelta(seconds=3))
    services.liquidate_due_sessions()
    liquidated = log(sid, "PositionLiquidated")
    assert [d["method"] for d in liquidated] == ["buy_back", "buy_back"]
    for got, want in zip(liquidated, expected_liquidations(users), strict=True):
        assert {k: got[k] for k in want} == want
    orders = [d for d in log(sid, "OrderPlaced") if d.get("liquidation")]
    # At the band's edge: 20 x 0.9 / (160 x 1.1) AAPL per ORCL; as much ORCL as covers the short there
    # (more than either holds: all of it).
    limit = int(Fraction(20 * 9, 160 * 11) * 10**8)
    assert [
        (d["user_id"], d["give_leg"], d["get_leg"], d["quantity"], d["limit_rate"], d["batches"]) for d in orders
    ] == [
        (users["alice"].pk, "ORCL", "AAPL", 185 * U, limit, 1),
        (users["bob"].pk, "ORCL", "AAPL", 180 * U, limit, 1),
    ]
    assert log(sid, "AutoDeleveraged") == []
    assert set(
        Participant.objects.filter(session_id=sid, liquidation_pending=True).values_list("user_id", flat=True)
    ) == {users["alice"].pk, users["bob"].pk}
    return orders


def test_in_a_batch_a_buy_back_without_a_seller_is_deleveraged_after_the_cut(users):
    buy_back_batch(users, "sqb")
    clock.set_time(T0 + dt.timedelta(seconds=10, milliseconds=1))  # the cut is due
    cut = services.clear_batch(None, "sqb")
    assert cut is not None and cut.number == 1 and cut.filled == 0
    adl = log("sqb", "AutoDeleveraged")
    for got, want in zip(adl, expected_deleveraging(users), strict=True):
        assert {k: got[k] for k in want} == want
        assert got["after_batch"] == 1 and got["prices"]["AAPL"] == 160 * U
    assert not Participant.objects.filter(session_id="sqb", liquidation_pending=True).exists()
    settle_and_check(users, "sqb")


def test_in_a_batch_a_buy_back_that_fills_closes_what_it_can_and_the_rest_is_deleveraged(users):
    buy_back_batch(users, "sqf")
    # mm sells 60 AAPL for ORCL, at least 8.5 ORCL each (the band reaches 8.8): a seller for both, at a
    # price where bob's 180 ORCL buy at least 180 / 8.8 = 20.45 AAPL and alice's 185 at most 21.8 of 25.
    clock.set_time(T0 + dt.timedelta(seconds=4))
    services.place_order(users["mm"], "sqf", "AAPL", "ORCL", "60", "8.5")
    clock.set_time(T0 + dt.timedelta(seconds=5))
    cut = services.clear_batch(users["org"], "sqf")  # the organiser cuts now
    fills = {f.participant.user_id: f for f in Fill.objects.filter(batch=cut).select_related("participant")}
    alice, bob = users["alice"].pk, users["bob"].pk
    assert fills[alice].given == 185 * U and fills[bob].given == 180 * U  # both buy-backs filled whole
    rate = Fraction(fills[mm_id := users["mm"].pk].received, fills[mm_id].given)  # ORCL per AAPL, one price
    assert Fraction(85, 10) <= rate <= Fraction(88, 10)
    x_after_cut = {u: fills[u].received for u in (alice, bob)}
    assert x_after_cut[bob] >= 20 * U, "bob's 180 ORCL buy back his whole short at any price in the band"
    assert x_after_cut[alice] < 25 * U, "alice's 185 ORCL do not (she was bankrupt)"
    adl = log("sqf", "AutoDeleveraged")
    assert [d["user_id"] for d in adl] == [alice] and adl[0]["after_batch"] == cut.number
    short = 25 * U - x_after_cut[alice]
    assert sum(m["units"] for m in adl[0]["moves"]) == short and adl[0]["paid"] == {}  # nothing left to pay with
    assert adl[0]["bankrupt"] is True
    x = projections.holdings_by_user("sqf")
    assert x[alice] == [0, 0, 0, 0] and x[bob][0] == x_after_cut[bob] - 20 * U
    settle_and_check(users, "sqf")


def test_verify_ledger_gives_the_buy_back_orders_again_and_names_one_that_differs(users):
    """The buy-back orders a liquidation placed are redone from its holdings, prices and the batch band:
    the log as written walks clean; an order with another quantity, or one left out, is named."""
    import copy
    import json

    from ledger.models import Event
    from markets.domain import margin_log

    buy_back_batch(users, "sqv")
    events = list(Event.objects.filter(stream="session-sqv").order_by("version"))
    assert [p for p in margin_log.walk(events) if isinstance(p, str)] == []
    placed = next(i for i, e in enumerate(events) if e.type == "OrderPlaced" and e.data.get("liquidation"))
    edited = copy.deepcopy(events)
    payload = edited[placed].data
    payload["quantity"] += 1
    edited[placed].payload = json.dumps(payload)
    problems = [p for p in margin_log.walk(edited) if isinstance(p, str)]
    assert any("buy-back order" in p and "the rule gives" in p for p in problems), problems
    dropped = events[:placed] + events[placed + 1 :]
    problems = [p for p in margin_log.walk(dropped) if isinstance(p, str)]
    assert any("that were not placed" in p for p in problems), problems
