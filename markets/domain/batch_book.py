"""A batch's book prepared for the price search: orders grouped by leg pair and limit, the band as integer
bounds, and the exact evaluation key. Internal to `markets.domain.batch` (pure, exact integers and Fractions).

Scales (see `oracle.units`): quantities in 10**-6 units, limit rates in 10**-8 (units of the get leg per
unit of the give leg), prices in 10**-6 currency. An order giving leg a for leg b is *eligible* at prices p
when its limit is met: `limit * p[b] <= RATE_SCALE * p[a]` (cross-multiplied, no division).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from oracle.units import RATE_SCALE


def ceil_div(num: int, den: int) -> int:
    return -((-num) // den)


def ceil_frac(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def floor_frac(x: Fraction) -> int:
    return x.numerator // x.denominator


@dataclass
class PairBook:
    """The orders giving leg `a` for leg `b`, grouped into limit levels (ascending: the most willing first)."""

    a: int
    b: int
    limits: list[int] = field(default_factory=list)  # distinct limits, ascending
    members: list[list[tuple[int, int]]] = field(default_factory=list)  # per level: (order id, quantity), by id
    prefix: list[int] = field(default_factory=lambda: [0])  # prefix[i] = units of the first i levels

    def eligible_levels(self, pa: int, pb: int) -> int:
        """How many levels are eligible at prices pa (give leg) and pb (get leg)."""
        return bisect_right(self.limits, RATE_SCALE * pa // pb)

    def eligible_units(self, pa: int, pb: int) -> int:
        return self.prefix[self.eligible_levels(pa, pb)]


@dataclass
class Prepared:
    """The book as the search reads it. `reference` and the bounds `lo`/`hi` are integer prices (10**-6)."""

    n: int
    reference: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    pairs: dict[tuple[int, int], PairBook]
    solver: object = field(default=None, compare=False, repr=False)  # the warm LP (batch_lp), made on first use

    def units(self, prices: Sequence[int]) -> dict[tuple[int, int], int]:
        """Eligible units per pair (give leg units) at `prices`; pairs with none are left out."""
        result = {}
        for key, pair in self.pairs.items():
            units = pair.eligible_units(prices[pair.a], prices[pair.b])
            if units:
                result[key] = units
        return result


def band_bounds(reference: Sequence[int], band: Fraction) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The integer prices within `band` of each reference: ceil(P(1-band)) .. floor(P(1+band))."""
    lo = tuple(ceil_div(p * (band.denominator - band.numerator), band.denominator) for p in reference)
    hi = tuple(p * (band.denominator + band.numerator) // band.denominator for p in reference)
    return lo, hi


def prepare(n: int, reference: Sequence[int], band: Fraction, orders: Sequence) -> Prepared:
    """Group `orders` (sorted by id) by (give, get) and limit. Deterministic whatever the input order."""
    lo, hi = band_bounds(reference, band)
    grouped: dict[tuple[int, int], dict[int, list[tuple[int, int]]]] = {}
    for order in sorted(orders, key=lambda o: o.id):
        grouped.setdefault((order.give, order.get), {}).setdefault(order.limit, []).append((order.id, order.quantity))
    pairs = {}
    for key in sorted(grouped):
        pair = PairBook(*key)
        for limit in sorted(grouped[key]):
            level = grouped[key][limit]
            pair.limits.append(limit)
            pair.members.append(level)
            pair.prefix.append(pair.prefix[-1] + sum(q for _, q in level))
        pairs[key] = pair
    return Prepared(n, tuple(reference), lo, hi, pairs)


@dataclass(frozen=True)
class Point:
    """A price vector and what the fill at those prices achieves, exactly.

    volume: units of each leg that change hands valued at the reference prices, sum_k P_k * T_k (10**-12).
    imbalance: eligible units left unfilled, valued the same way (the classic auction's surplus).
    flows: value per pair (10**-12 at the clearing prices), the circulation the volume comes from.
    """

    prices: tuple[int, ...]
    volume: Fraction
    imbalance: Fraction
    flows: dict[tuple[int, int], int] = field(compare=False, hash=False)


def distance(prices: Sequence[int], reference: Sequence[int]) -> tuple[Fraction, Fraction]:
    """How far prices are from the reference: the largest relative move, then the sum of them."""
    moves = [Fraction(abs(p - r), r) for p, r in zip(prices, reference, strict=True)]
    return max(moves), sum(moves, Fraction(0))


def rank(point: Point, reference: Sequence[int]) -> tuple:
    """Smaller is better: most volume, then least imbalance, then closest to the reference, then the
    smallest price vector (a total order, so every choice is deterministic)."""
    far, total = distance(point.prices, reference)
    return (-point.volume, point.imbalance, far, total, point.prices)
