"""The exact feasibility check of a batch's result: the one function the service runs before it commits a
clearing and `verify_ledger` runs on the record. Integers and Fractions only; each problem names the leg
or the order it is about.

A clearing is feasible when:
- every price is an integer within the band of its leg's reference price;
- every fill is an order of the book, with its owner and legs, 0 < given <= quantity, rest = quantity - given;
- every fill's order is eligible at the clearing prices (limit * p_get <= RATE_SCALE * p_give: it trades at
  the uniform rate p_give / p_get or better) and its own fill meets its limit exactly:
  received * RATE_SCALE >= given * limit;
- per leg, the units given equal the units received;
- rates are uniform up to the rounding (see `_uniform`): every fill receives what it gives at the clearing
  rate, given * p_give / p_get, to within its leg's dust plus one base unit, and that is at least one unit;
- the volume is sum of reference[give] * given over the fills;
- if holdings are given ({owner: units per leg}), nobody ends below zero.
"""

from __future__ import annotations

from markets.domain.batch_book import band_bounds
from oracle.units import RATE_SCALE


def check(book, result, holdings=None) -> list[str]:
    from markets.domain.batch import Clearing, NoClearing

    if isinstance(result, NoClearing):
        return []
    if not isinstance(result, Clearing):
        return ["the result is neither a clearing nor a no-clearing"]
    legs, n = book.legs, len(book.legs)
    problems: list[str] = []
    prices = result.prices
    if len(prices) != n or any(isinstance(p, bool) or not isinstance(p, int) for p in prices):
        return [f"the clearing needs {n} integer prices"]
    lo, hi = band_bounds(book.reference, book.band)
    for k in range(n):
        if not lo[k] <= prices[k] <= hi[k]:
            problems.append(f"the price of {legs[k]} ({prices[k]}) is outside its band [{lo[k]}, {hi[k]}]")
    if problems:
        return problems
    orders = {o.id: o for o in book.orders}
    given_k, received_k = [0] * n, [0] * n
    seen = set()
    for f in result.fills:
        o = orders.get(f.order)
        if o is None or f.order in seen:
            problems.append(f"fill of order {f.order}: not an order of the book, or filled twice")
            continue
        seen.add(f.order)
        if (f.owner, f.give, f.get) != (o.owner, o.give, o.get):
            problems.append(f"order {o.id}: the fill's owner or legs differ from the order's")
            continue
        if not 0 < f.given <= o.quantity or f.rest != o.quantity - f.given or f.received < 0:
            problems.append(f"order {o.id}: gives {f.given} of {o.quantity} (rest {f.rest}), receives {f.received}")
            continue
        if o.limit * prices[o.get] > RATE_SCALE * prices[o.give]:
            problems.append(f"order {o.id}: its limit is not met at the clearing prices")
        if f.received * RATE_SCALE < f.given * o.limit:
            problems.append(f"order {o.id}: receives {f.received} for {f.given}, below its limit")
        given_k[o.give] += f.given
        received_k[o.get] += f.received
    for k in range(n):
        if given_k[k] != received_k[k]:
            problems.append(f"{legs[k]}: {given_k[k]} units given but {received_k[k]} received")
    if problems:
        return problems
    problems += _uniform(book, result)
    volume = sum(book.reference[f.give] * f.given for f in result.fills)
    if volume != result.volume:
        problems.append(f"the volume is recorded as {result.volume}, the fills make {volume}")
    if holdings is not None:
        problems += _holdings(book, result, holdings)
    return problems


def _uniform(book, result) -> list[str]:
    """Uniform rates up to the rounding, in integers: amounts of leg k are valued at p_k (10**-12).

    With e = given * p_give / p_k the exact receipt of a fill at the clearing rate and L = the least its limit
    allows, a leg's dust is D_k = sum(e) - units of k given, and X_k = sum(max(0, L - e)) what limits
    demand beyond the exact receipts. Every fill receives within |D_k| + X_k + 1 units of e
    (docs/batch-auctions.md derives the bound), and each e is at least one base unit."""
    prices, n = result.prices, len(book.legs)
    limits = {o.id: o.limit for o in book.orders}
    dust = [0] * n
    extra = [0] * n
    for f in result.fills:
        value = f.given * prices[f.give]  # e * p_k
        dust[f.get] += value
        dust[f.give] -= value
        least = -((-f.given * limits[f.order]) // RATE_SCALE)
        extra[f.get] += max(0, least * prices[f.get] - value)
    problems = []
    for f in result.fills:
        value = f.given * prices[f.give]
        if value < prices[f.get]:
            problems.append(f"order {f.order}: gives {f.given}, less than one base unit of {book.legs[f.get]}")
        elif abs(f.received * prices[f.get] - value) > abs(dust[f.get]) + extra[f.get] + prices[f.get]:
            problems.append(f"order {f.order}: receives {f.received}, the clearing rate gives {value}/{prices[f.get]}")
    return problems


def _holdings(book, result, holdings) -> list[str]:
    after = {owner: list(row) for owner, row in holdings.items()}
    problems = []
    for f in result.fills:
        if f.owner not in after:
            problems.append(f"order {f.order}: owner {f.owner} has no holdings")
            continue
        after[f.owner][f.give] -= f.given
        after[f.owner][f.get] += f.received
    for owner, row in sorted(after.items()):
        for k, units in enumerate(row):
            if units < 0:
                problems.append(f"owner {owner} would hold {units} of {book.legs[k]}")
    return problems
