"""A short squeeze in a generated log (`bench.eventlog`): a session that allows bounded shorting, one trader
going short of a leg through an RFQ, the oracle jumping that leg until the trader's worst case W is below 0,
and the liquidation the services would write, so that a log covers PositionLiquidated and AutoDeleveraged too.

In a session trading by batch auction the shorts are offered back in the next batch (PositionLiquidated,
then OrderPlaced buy-back orders, `"liquidation": true`, one batch each); the organiser cuts it now, and
what it leaves short is deleveraged after the cut (AutoDeleveraged with `after_batch`, at the cut's
prices). Nobody but the victim offers the short leg, so the buy-back does not fill and the deleveraging
moves everything. In a session trading by RFQ only the deleveraging follows at once. Payloads are built
with the backbone's own rules (`markets.domain.margin.assess`, `markets.domain.liquidation`), as
`markets.services.margin` writes them; the log's ticks get ids the loader stores as oracle ticks.

The squeeze draws on its own random generator (seeded from the log's), so the rest of a log is what it
was without it, only shifted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from markets import domain
from markets.domain import liquidation
from markets.domain import margin as rules
from markets.domain import orders as order_rules

SETTINGS = rules.MarginSettings("0.2", "0.15", "0.05")
ROOM = 30  # the events a squeeze needs at most before the stream's end (its three steps and a margin)


@dataclass
class Squeeze:
    """A stream's shorting state: the oracle's prices (a batch stream's reference prices are its book's),
    the squeeze's step (0 before, 1 short, 2 liquidated with buy-backs waiting, 3 done), who and what."""

    rng: random.Random
    prices: list[int] = field(default_factory=list)
    step: int = 0
    victim: int = 0
    leg: int = 0
    start_after: int = 0  # the stream's version after which the squeeze may start


def created(st) -> dict[str, Any]:
    """What SessionCreated adds for a stream that allows shorting (as `MarginSettings.payload`)."""
    return SETTINGS.payload() if st.short is not None else {}


def start(st, seed: int, index: int, budget: int) -> Squeeze:
    rng = random.Random(f"squeeze-{seed}-{index}")
    prices = [rng.randrange(10, 1000) * domain.PRICE_SCALE for _ in st.legs]
    return Squeeze(rng, prices, start_after=len(st.traders) + len(st.makers) + 4 + budget // 3)


def _prices(st) -> list[int]:
    return st.book.prices if st.book is not None else st.short.prices


def due(st, room: int) -> bool:
    """Whether the squeeze writes the stream's next events."""
    sq = st.short
    if sq is None or sq.step >= 3 or st.version < sq.start_after:
        return False
    return sq.step > 0 or (room >= ROOM and len(st.legs) >= 3)


def plan(st, ids: dict[str, int], clear_now) -> list[tuple[str, Any]]:
    """The squeeze's next step. `clear_now(st, ids)` is the batch cut (`eventlog_batch._cut`)."""
    sq = st.short
    if sq.step == 0:
        return _go_short(st, ids)
    if sq.step == 1:
        return _jump_and_liquidate(st, ids)
    sq.step = 3  # the buy-back batch: cut now, then what is still short is deleveraged at its prices
    cut = clear_now(st, ids)
    number = st.book.cuts
    ticks = {leg: ids["tick"] - len(st.legs) + 1 + k for k, leg in enumerate(st.legs)}  # the cut's own ticks
    return [("BatchCleared", cut), _deleverage(st, sq.victim, list(st.book.prices), ticks, after_batch=number)]


def _free(st, who: int, k: int) -> int:
    reserved = st.book.reserved.get(who) if st.book is not None else None
    return st.holdings[who][k] - (reserved[k] if reserved else 0)


def _go_short(st, ids: dict[str, int]) -> list[tuple[str, Any]]:
    """A trader gives a leg nobody's resting order offers, beyond what it holds, for a leg a maker holds,
    at the oracle's rate, as short as the margin rule lets it go (the short limit, halved until W >= IM)."""
    sq = st.short
    n = len(st.legs)
    prices = _prices(st)
    busy = set(st.book.pair or ()) if st.book is not None and st.book.resting else set()
    free_legs = [k for k in range(n) if k not in busy]
    caps = SETTINGS.caps(st.q)
    for victim in st.traders:
        k = sq.rng.choice(free_legs)
        for j in sorted((j for j in range(n) if j != k), key=lambda j: (sq.rng.random(), j)):
            rate = prices[k] * domain.RATE_SCALE // prices[j]
            maker = max(st.makers, key=lambda m: (_free(st, m, j), -m))
            short = caps[k]
            while short > 0:
                give = _free(st, victim, k) + short
                receive = domain.trade_receive(give, rate)
                after = list(st.holdings[victim])
                after[k] -= give
                after[j] += receive
                if 0 < receive <= _free(st, maker, j) and rules.assess(after, prices, SETTINGS).excess >= 0:
                    return _trade(st, ids, victim, maker, k, j, give, receive, rate)
                short //= 2
    sq.step = 3  # nobody can go short here: no squeeze in this stream
    return []


def _trade(st, ids, victim: int, maker: int, k: int, j: int, give: int, receive: int, rate: int) -> list:
    sq = st.short
    sq.step, sq.victim, sq.leg = 1, victim, k
    ids["rfq"] += 1
    ids["quote"] += 1
    ids["trade"] += 1
    n = len(st.legs)
    taker_deltas, maker_deltas = [0] * n, [0] * n
    taker_deltas[k], taker_deltas[j] = -give, receive
    maker_deltas[k], maker_deltas[j] = give, -receive
    legs = st.legs
    rfq = {"rfq_id": ids["rfq"], "taker_id": victim, "give_leg": legs[k], "get_leg": legs[j], "quantity": give}
    from bench.eventlog import T2  # the quote is accepted at once: it lives until trading ends

    quote = {
        "quote_id": ids["quote"],
        "rfq_id": ids["rfq"],
        "maker_id": maker,
        "rate": rate,
        "expires_at": T2.isoformat(),
    }
    trade = {
        "trade_id": ids["trade"],
        "rfq_id": ids["rfq"],
        "quote_id": ids["quote"],
        "taker_id": victim,
        "maker_id": maker,
        "give_leg": legs[k],
        "get_leg": legs[j],
        "give_qty": give,
        "get_qty": receive,
        "rate": rate,
        "taker_deltas": taker_deltas,
        "maker_deltas": maker_deltas,
    }
    return [("RFQRequested", rfq), ("QuoteProvided", quote), ("TradeExecuted", trade)]


def _jump_and_liquidate(st, ids: dict[str, int]) -> list[tuple[str, Any]]:
    """The oracle ticks every leg, the short one at twice the price that would bring W to 0: W < 0, the
    trader is liquidated (its resting orders cancelled first)."""
    sq = st.short
    prices = _prices(st)
    row = st.holdings[sq.victim]
    low, high = 1 - SETTINGS.band, 1 + SETTINGS.band
    longs = sum(v * prices[k] * low for k, v in enumerate(row) if v > 0)
    prices[sq.leg] = 2 * int(longs / (-row[sq.leg] * high)) + domain.PRICE_SCALE
    ticks = {}
    for leg in st.legs:
        ids["tick"] += 1
        ticks[leg] = ids["tick"]
    judged = rules.assess(row, prices, SETTINGS, st.legs)
    assert judged.w < 0
    events: list[tuple[str, Any]] = []
    if st.book is not None:
        for oid in sorted(o["id"] for o in st.book.resting.values() if o["owner"] == sq.victim):
            gone = st.book.resting.pop(oid)
            st.book.reserved[gone["owner"]][gone["give"]] -= gone["rest"]
            events.append(("OrderCancelled", {"order_id": oid, "user_id": sq.victim, "reason": "liquidation"}))
    orders = []
    if st.book is not None:
        band = order_rules.band_fraction(_batch_band())
        orders = liquidation.buy_back_orders(row, prices, band)
    sq.step = 2 if orders else 3
    events.append(
        (
            "PositionLiquidated",
            {
                "user_id": sq.victim,
                "holdings": list(row),
                "prices": dict(zip(st.legs, prices, strict=True)),
                "ticks": ticks,
                "margin_band": SETTINGS.margin_band,
                "W": rules.money_text(judged.w),
                "requirement": rules.money_text(judged.requirement),
                "method": "buy_back" if orders else "deleverage",
            },
        )
    )
    n = len(st.legs)
    for give, get, quantity, limit in orders:
        ids["order"] += 1
        st.book.resting[ids["order"]] = {
            "id": ids["order"], "owner": sq.victim, "give": give, "get": get, "rest": quantity, "limit": limit, "left": 1,
        }  # fmt: skip
        st.book.reserved.setdefault(sq.victim, [0] * n)[give] += quantity
        payload = {
            "order_id": ids["order"],
            "user_id": sq.victim,
            "give_leg": st.legs[give],
            "get_leg": st.legs[get],
            "quantity": quantity,
            "limit_rate": limit,
            "batches": 1,
            "liquidation": True,
        }
        events.append(("OrderPlaced", payload))
    if not orders:
        events.append(_deleverage(st, sq.victim, list(prices), ticks))
    return events


def _batch_band() -> str:
    from bench.eventlog_batch import BAND

    return BAND


def _deleverage(st, victim: int, prices: list[int], ticks: dict[str, int], after_batch: int | None = None):
    plan = liquidation.plan_deleverage(victim, st.holdings, prices)
    domain.check_zero_sum(*plan.deltas.values())
    for user, delta in plan.deltas.items():
        row = st.holdings[user]
        for k, change in enumerate(delta):
            row[k] += change
    payload = plan.payload(st.legs) | {"prices": dict(zip(st.legs, prices, strict=True)), "ticks": dict(ticks)}
    if after_batch is not None:
        payload["after_batch"] = after_batch
    return ("AutoDeleveraged", payload)
