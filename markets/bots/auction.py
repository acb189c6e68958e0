"""What the bots decide in sessions that trade by batch auction: pure functions of what they see (no Django,
no I/O, no floats), drawing from the caller's `random.Random` in a fixed order over data sorted by id.

The fair rate of a pair is the oracle-implied rate (`markets.pricing.implied_rate`: give price / get price).
A maker keeps two-sided limit orders on a few pairs of legs: on each pair one order gives A for B asking the
fair rate plus a spread in its favour, one gives B for A the same way, each a share of what it may give
above its floor, within the session's `max_orders` and `min_order`. Orders live one batch, so a maker places
them again each batch; before the cut it cancels those the prices have moved off (a limit below the fair
rate would sell too cheap; one beyond its widest spread would not fill). A taker, with no order resting,
now and then places one that crosses: at the fair rate or through it (up to `cross_max_bps`), a fraction of
what it may give. From the cut's instant until the scheduler has recorded it nothing is cancelled or placed:
the book belongs to the batch being cleared.
"""

from __future__ import annotations

import datetime as dt
import random

from markets import domain, pricing
from markets.bots import shorting
from markets.bots.policy import BPS, RFQ_STEP, Intent, Market, OrderView, Params, leg_floor, rfq_size


def fair(market: Market, give: str, get: str) -> int:
    """Units of `get` one unit of `give` is worth at the latest prices, or inside the fixing window at the
    fixing so far (RATE base units)."""
    marks = market.marks
    return pricing.implied_rate(marks[give], marks[get])


def ask_limit(fair_rate: int, spread_bps: int) -> int:
    """A maker's limit: the fair rate plus `spread_bps`, rounded up (it never asks less than its spread)."""
    return -(-fair_rate * (BPS + spread_bps) // BPS)


def cross_limit(fair_rate: int, through_bps: int) -> int:
    """A taker's limit: the fair rate less `through_bps`, rounded down (at or through the fair rate)."""
    return fair_rate * (BPS - through_bps) // BPS


def stale(order: OrderView, market: Market, params: Params) -> bool:
    """A maker's order the prices have moved off: its limit is no longer within its spreads of the fair rate."""
    if order.give_leg not in market.prices or order.get_leg not in market.prices:
        return False
    rate = fair(market, order.give_leg, order.get_leg)
    return not ask_limit(rate, params.spread_min_bps) <= order.limit <= ask_limit(rate, params.spread_max_bps)


def _collecting(market: Market, now: dt.datetime) -> bool:
    """The book takes orders and cancels for the coming cut (not from its instant until it is recorded)."""
    return market.by_batch and (market.next_cut is None or now < market.next_cut)


def _valid(limit: int) -> bool:
    return 1 <= limit <= domain.MAX_RATE * domain.RATE_SCALE


def _size(free: int, pct: int, min_order: int) -> int:
    """`pct`% of what may be given, in whole hundredths; 0 when below the session's minimum order."""
    size = rfq_size(free, pct)
    return size if size >= max(min_order, RFQ_STEP) else 0


def maker_orders(name: str, params: Params, market: Market, rng: random.Random, now: dt.datetime) -> list[Intent]:
    """Cancel its orders the prices moved off, then place two-sided orders on pairs it has nothing resting on
    until it covers `order_pairs` pairs, each within what it may give above its floor."""
    if not _collecting(market, now):
        return []
    intents: list[Intent] = []
    mine = [o for o in market.orders if o.owner == name]
    kept = []
    for order in mine:
        if stale(order, market, params):
            intents.append(
                _intent(name, "cancel_order", order.give_leg, order.get_leg, order.rest, order.limit, order.id)
            )
        else:
            kept.append(order)
    priced = [leg for leg in market.legs if leg in market.prices]
    busy = {frozenset((o.give_leg, o.get_leg)) for o in kept}
    pairs = [(a, b) for i, a in enumerate(priced) for b in priced[i + 1 :] if frozenset((a, b)) not in busy]
    room = market.max_orders - len(kept) if market.max_orders else 2 * len(pairs)
    held = market.holdings.get(name, {})
    committed: dict[str, int] = {}
    wanted = max(0, params.order_pairs - len(busy))  # it keeps orders on `order_pairs` pairs, no more
    for a, b in rng.sample(pairs, min(wanted, len(pairs))):
        for give, get in ((a, b), (b, a)):
            spread = rng.randint(params.spread_min_bps, params.spread_max_bps)
            if room <= 0:
                continue
            floor = leg_floor(market.initial.get(name, {}).get(give, 0), params.floor_pct)
            free = held.get(give, 0) - floor - committed.get(give, 0)
            quantity = _size(free, params.order_size_pct, market.min_order)
            limit = ask_limit(fair(market, give, get), spread)
            if quantity <= 0 or not _valid(limit):
                continue
            committed[give] = committed.get(give, 0) + quantity
            room -= 1
            intents.append(_intent(name, "order", give, get, quantity, limit))
    return intents


def taker_orders(name: str, params: Params, market: Market, rng: random.Random, now: dt.datetime) -> list[Intent]:
    """With no order resting, maybe place one giving a fraction of one holding for another leg, at or through
    the fair rate (so it crosses the makers' asks and the other takers' orders)."""
    if not _collecting(market, now) or any(o.owner == name for o in market.orders):
        return []
    if rng.randrange(100) >= params.order_chance_pct:
        return []
    held = market.holdings.get(name, {})
    priced = [leg for leg in market.legs if leg in market.prices]
    may = {leg: shorting.may_give(market, name, leg) for leg in priced}  # what it holds (+ its short limit)
    gives = [leg for leg in priced if _size(may[leg], params.size_max_pct, market.min_order) > 0]
    if not gives or len(priced) < 2:
        return []
    give = rng.choice(gives)
    get = rng.choice([leg for leg in priced if leg != give])
    base = max(0, held.get(give, 0))
    if shorting.on(market) and rng.randrange(100) < params.short_chance_pct:
        base = may[give]  # beyond what it holds, within its limit and the pool's cap
    quantity = _size(base, rng.randint(params.size_min_pct, params.size_max_pct), market.min_order)
    limit = cross_limit(fair(market, give, get), rng.randint(0, params.cross_max_bps))
    if quantity <= 0 or not _valid(limit):
        return []
    if shorting.on(market) and not shorting.passes(  # as the services judge it: filled whole at its limit, now
        market, name, shorting.trade_change(give, get, quantity, domain.trade_receive(quantity, limit))
    ):
        return []
    return [_intent(name, "order", give, get, quantity, limit)]


def _intent(name: str, kind: str, give: str, get: str, quantity: int, limit: int, ref: int | None = None) -> Intent:
    return Intent(name, kind, give, get, quantity, rate=limit, ref=ref)
