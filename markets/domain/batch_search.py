"""The price search. Internal to `markets.domain.batch`; see docs/batch-auctions.md for the rule.

The book splits into components (legs linked by orders); a leg no order touches keeps its reference price.
A component of two legs is the classic call auction, solved exactly here; larger components go to
`batch_multi`. Prices live on the 10**-6 grid, so a rate x = p_a / p_b chosen in exact Fractions is
*realised* as integer prices: p_b near the level that keeps the two legs' moves symmetric
(p_a/P_a - 1 = 1 - p_b/P_b, the closest to the reference), p_a = floor or ceil of x * p_b.
"""

from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction

from markets.domain.batch_book import Point, Prepared, ceil_frac, floor_frac, rank
from markets.domain.batch_flow import point
from oracle.units import RATE_SCALE


def components(prep: Prepared) -> list[list[int]]:
    """Legs linked by at least one order, each component sorted, components by their smallest leg."""
    parent = list(range(prep.n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in prep.pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for k in range(prep.n):
        if any(k in pair for pair in prep.pairs):
            groups.setdefault(root(k), []).append(k)
    return [groups[r] for r in sorted(groups)]


def restrict(prep: Prepared, legs: list[int]) -> Prepared:
    """The same book with only the pairs inside `legs` (the other legs keep their reference price)."""
    inside = set(legs)
    pairs = {key: pair for key, pair in prep.pairs.items() if key[0] in inside and key[1] in inside}
    return Prepared(prep.n, prep.reference, prep.lo, prep.hi, pairs)


# ---------------------------------------------------------------- two legs: the classic call auction


def realize(prep: Prepared, a: int, b: int, x: Fraction) -> list[tuple[int, ...]]:
    """Integer price vectors for the rate x = p_a / p_b (one from below, one from above; one if exact)."""
    ref, lo, hi = prep.reference, prep.lo, prep.hi
    low = max(lo[b], ceil_frac(lo[a] / x))
    high = min(hi[b], floor_frac(hi[a] / x))
    if low > high:
        return []
    level = Fraction(2 * ref[a] * ref[b]) / (ref[a] + x * ref[b])
    pb = min(max(ceil_frac(level - Fraction(1, 2)), low), high)
    result = []
    for pa in sorted({floor_frac(x * pb), ceil_frac(x * pb)}):
        prices = list(ref)
        prices[a], prices[b] = pa, pb
        result.append(tuple(prices))
    return result


class TwoLeg:
    """The call auction between legs a and b: `ab` gives a for b, `ba` gives b for a."""

    def __init__(self, prep: Prepared, a: int, b: int) -> None:
        self.prep, self.a, self.b = prep, a, b
        self.ab, self.ba = prep.pairs[a, b], prep.pairs[b, a]
        self.low = Fraction(prep.lo[a], prep.hi[b])
        self.high = Fraction(prep.hi[a], prep.lo[b])
        self.grid = Fraction(1, prep.lo[b])  # a realised rate is within this of its candidate

    def supply(self, x: Fraction) -> int:
        """Units of a offered at rate x (orders whose limit x meets)."""
        return self.ab.prefix[bisect_right(self.ab.limits, floor_frac(x * RATE_SCALE))]

    def demand(self, x: Fraction) -> int:
        """Units of b offered for a at rate x."""
        return self.ba.prefix[bisect_right(self.ba.limits, floor_frac(RATE_SCALE / x))]

    def gap(self, x: Fraction) -> Fraction:
        """Value offered of a minus value offered of b, in units of b: nondecreasing in x."""
        return x * self.supply(x) - self.demand(x)

    def bases(self) -> list[Fraction]:
        """Every limit rate inside the band, the band's edges and the reference rate, ascending. The two
        sides' limits are merged by integer cross-multiplication (x = r / S for a seller of a, x = S / r for
        a seller of b, S = RATE_SCALE), so only the rates the search looks at become Fractions."""
        ab, ba = self.ab.limits, self.ba.limits
        first = bisect_right(ab, floor_frac(self.low * RATE_SCALE) - 1)
        last = bisect_right(ab, floor_frac(self.high * RATE_SCALE))
        sellers = ab[first:last]  # x = r / S, ascending
        first = bisect_right(ba, floor_frac(RATE_SCALE / self.high) - 1)
        last = bisect_right(ba, floor_frac(RATE_SCALE / self.low))
        buyers = ba[first:last][::-1]  # x = S / r, ascending
        merged, i, j = [], 0, 0
        while i < len(sellers) or j < len(buyers):
            if j == len(buyers) or (i < len(sellers) and sellers[i] * buyers[j] <= RATE_SCALE * RATE_SCALE):
                merged.append((sellers[i], RATE_SCALE))
                i += 1
            else:
                merged.append((RATE_SCALE, buyers[j]))
                j += 1
        specials = sorted({self.low, self.high, Fraction(self.prep.reference[self.a], self.prep.reference[self.b])})
        return _Rates(merged, specials, self.low, self.high)

    def crossing(self, left: Fraction, right: Fraction) -> Fraction | None:
        """Where supply meets demand strictly between two consecutive candidates, if it does."""
        supply, demand = self.supply(left), self.demand(right)
        if supply and demand and left < Fraction(demand, supply) < right:
            return Fraction(demand, supply)
        return None

    def at(self, prices: tuple[int, ...]) -> Point:
        pa, pb = prices[self.a], prices[self.b]
        units = {}
        for key, pair, give, get in ((self.a, self.b), self.ab, pa, pb), ((self.b, self.a), self.ba, pb, pa):
            if count := pair.eligible_units(give, get):
                units[key] = count
        flow = min(pa * units.get((self.a, self.b), 0), pb * units.get((self.b, self.a), 0))
        flows = {(self.a, self.b): flow, (self.b, self.a): flow} if flow else {}
        return point(self.prep, prices, units, flows)

    def solve(self) -> Point | None:
        """The best realised candidate, exactly as a brute force over all candidates would choose it.

        The volume along x is min(supply side, demand side): nondecreasing while gap <= 0, nonincreasing
        after, so the optimum is next to where gap turns positive; candidates further away are realised
        only while their grid error could still bring them closer to that turn than the best found.
        """
        bases = self.bases()
        turn = _first(bases, lambda x: self.gap(x) > 0)
        todo = [bases[i] for i in range(max(turn - 1, 0), min(turn + 1, len(bases)))]
        if 0 < turn < len(bases) and (cross := self.crossing(bases[turn - 1], bases[turn])) is not None:
            todo.append(cross)
        seen: dict[tuple[int, ...], Point] = {}
        left_edge, right_edge = [None], [None]

        def visit(x: Fraction) -> None:
            for prices in realize(self.prep, self.a, self.b, x):
                if prices not in seen:
                    seen[prices] = self.at(prices)
                    y = Fraction(prices[self.a], prices[self.b])
                    if self.gap(y) <= 0:
                        left_edge[0] = y if left_edge[0] is None else max(left_edge[0], y)
                    else:
                        right_edge[0] = y if right_edge[0] is None else min(right_edge[0], y)

        for x in todo:
            visit(x)
        i = max(turn - 2, -1)
        while i >= 0 and (left_edge[0] is None or bases[i] + self.grid >= left_edge[0]):
            visit(bases[i])
            i -= 1
        i = turn + 1
        while i < len(bases) and (right_edge[0] is None or bases[i] - self.grid <= right_edge[0]):
            visit(bases[i])
            i += 1
        best = min(seen.values(), key=lambda p: rank(p, self.prep.reference), default=None)
        return best if best is not None and best.volume > 0 else None


class _Rates:
    """A sorted list of rates kept as (numerator, denominator) pairs, read as Fractions on demand, with a
    few special rates merged in; only rates inside [low, high] are kept."""

    def __init__(self, pairs: list[tuple[int, int]], specials: list[Fraction], low: Fraction, high: Fraction):
        items: list = []
        k = 0
        for num, den in pairs:
            while k < len(specials) and specials[k].numerator * den < num * specials[k].denominator:
                items.append(specials[k])
                k += 1
            if k < len(specials) and specials[k].numerator * den == num * specials[k].denominator:
                continue  # the special rate stands for it
            items.append((num, den))
        items.extend(specials[k:])
        ln, ld, hn, hd = low.numerator, low.denominator, high.numerator, high.denominator
        self.items = [
            x for x in items if isinstance(x, Fraction) or (ln * x[1] <= x[0] * ld and x[0] * hd <= hn * x[1])
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Fraction:
        x = self.items[i]
        return x if isinstance(x, Fraction) else Fraction(*x)


def _first(items, predicate) -> int:
    """The first index whose item satisfies a monotone predicate (len(items) if none does)."""
    low, high = 0, len(items)
    while low < high:
        mid = (low + high) // 2
        if predicate(items[mid]):
            high = mid
        else:
            low = mid + 1
    return low
