"""The price search for a component of three or more legs (ring trades). Internal to
`markets.domain.batch`; see docs/batch-auctions.md.

Choosing prices and fills together is a nonconvex problem (Walther 2018 needs one binary per order); this is
a deterministic local search over integer price vectors, every candidate judged by the exact fill at its
prices (`batch_flow.evaluate`) and the same rank as everywhere else:

1. starts: the reference prices; each pair's own call auction as it stands (the other legs at their
   reference); the pairwise auctions stitched along a spanning tree of the pairs that trade most; the
   proposals of a small mixed-integer program that chooses which orders to make eligible (it finds ring
   trades no single price move reaches); points spread over the band;
2. from each start, node clearing (Gauss-Seidel tatonnement, as in SPEEDEX): each leg in turn moves to
   where the value offered of it meets the value offered for it, the others fixed;
3. polish: single-leg moves to the nearest prices at which some order's eligibility changes, kept when
   they rank better, until none does (bounded rounds);
4. the answer is the best point ever judged, so never worse than any start: at least what the best pair
   alone makes. If nothing trades yet, `batch_rings` looks for a ring that can (exact, bounded) and the
   search polishes from it.
"""

from __future__ import annotations

from fractions import Fraction

from markets.domain.batch_book import Point, Prepared, ceil_div, rank
from markets.domain.batch_flow import _on_cycles, evaluate
from markets.domain.batch_rings import ring_start
from markets.domain.batch_search import TwoLeg
from oracle.units import RATE_SCALE

BALANCE_SWEEPS = 12
POLISH_ROUNDS = 6
POLISH_WIDTH = 3
SMALL_BOOK = 64  # limit levels: up to this many, every start is polished
PROBES = 64
LARGE_PROBES = 16
SMALL_BUDGET = 4000  # exact evaluations (fills at fixed prices) per component, for books up to SMALL_BOOK
LARGE_BUDGET = 120
PROBES_POLISHED = 4
LARGE_POLISHED = 2
PAIR_SEEDS = 8  # the pairs whose own auctions (the most volume first) are judged as they stand
SEEDS_POLISHED = 2


class Multi:
    def __init__(self, prep: Prepared, legs: list[int]) -> None:
        self.prep = prep
        arcs = _on_cycles(list(prep.pairs))
        self.legs = sorted({a for a, _ in arcs})  # legs on no cycle cannot trade: they keep the reference
        self.on_cycles = set(self.legs)
        self.outs: dict[int, list] = {k: [] for k in legs}
        self.ins: dict[int, list] = {k: [] for k in legs}
        for a, b in arcs:
            self.outs[a].append(prep.pairs[a, b])
            self.ins[b].append(prep.pairs[a, b])
        self.cache: dict[tuple[int, ...], Point] = {}
        self.ranks: dict[tuple[int, ...], tuple] = {}
        self.budget = SMALL_BUDGET
        self.pairs: list | None = None

    def judge(self, prices: tuple[int, ...]) -> Point:
        if prices not in self.cache:
            self.cache[prices] = evaluate(self.prep, prices)
        return self.cache[prices]

    def rank(self, point: Point) -> tuple:
        if point.prices not in self.ranks:
            self.ranks[point.prices] = rank(point, self.prep.reference)
        return self.ranks[point.prices]

    def best(self, candidates) -> Point:
        return min((self.judge(p) for p in candidates), key=self.rank)

    # ------------------------------------------------------------ node clearing

    def gap(self, k: int, prices: list[int], t: int) -> int:
        """Value offered of leg k minus value offered for it, with p_k = t (nondecreasing in t)."""
        out = t * sum(pair.eligible_units(t, prices[pair.b]) for pair in self.outs[k])
        into = sum(prices[pair.a] * pair.eligible_units(prices[pair.a], t) for pair in self.ins[k])
        return out - into

    def clear_leg(self, k: int, prices: list[int]) -> int:
        """The price of leg k nearest its current one at which its offered values meet."""
        now = prices[k]
        here = self.gap(k, prices, now)
        if here == 0:
            return now
        lo, hi = self.prep.lo[k], self.prep.hi[k]
        if here < 0:
            low, high = now + 1, hi + 1  # the first t with gap >= 0
            while low < high:
                mid = (low + high) // 2
                if self.gap(k, prices, mid) >= 0:
                    high = mid
                else:
                    low = mid + 1
            options = [t for t in (low - 1, low) if lo <= t <= hi]
        else:
            low, high = lo - 1, now - 1  # the last t with gap <= 0
            while low < high:
                mid = (low + high + 1) // 2
                if self.gap(k, prices, mid) <= 0:
                    low = mid
                else:
                    high = mid - 1
            options = [t for t in (low, low + 1) if lo <= t <= hi]
        return min(options, key=lambda t: (abs(self.gap(k, prices, t)), abs(t - now), t))

    def balance(self, start: tuple[int, ...]) -> tuple[int, ...]:
        prices = list(start)
        for _ in range(BALANCE_SWEEPS):
            moved = False
            for k in self.legs:
                t = self.clear_leg(k, prices)
                if t != prices[k]:
                    prices[k], moved = t, True
            if not moved:
                break
        return tuple(prices)

    # ------------------------------------------------------------ starts

    def pair_auctions(self) -> list[tuple[Fraction, int, int, tuple[int, ...]]]:
        """Each pair's own call auction (exact, `TwoLeg`), the other legs at their reference prices:
        (-volume, a, b, prices), the most volume first. Embedded in the component, such a vector does at
        least as well as the pair alone (more eligible arcs only add circulations), so judging it is what
        guarantees that the search never misses a cross two orders make."""
        if self.pairs is None:
            prep, ref = self.prep, self.prep.reference
            found = []
            for a, b in sorted(prep.pairs):
                if a < b and (b, a) in prep.pairs:
                    sub = Prepared(prep.n, ref, prep.lo, prep.hi, {(a, b): prep.pairs[a, b], (b, a): prep.pairs[b, a]})
                    solved = TwoLeg(sub, a, b).solve()
                    if solved is not None:
                        found.append((-solved.volume, a, b, solved.prices))
            self.pairs = sorted(found)
        return self.pairs

    def stitched(self) -> tuple[int, ...] | None:
        """Each pair's own call auction, joined along a maximum-volume spanning tree of the pairs."""
        prep, ref = self.prep, self.prep.reference
        edges = [(volume, a, b, Fraction(p[a], p[b])) for volume, a, b, p in self.pair_auctions()]
        if not edges:
            return None
        parent = {k: k for k in range(prep.n)}

        def root(k: int) -> int:
            while parent[k] != k:
                k = parent[k]
            return k

        tree: dict[int, list[tuple[int, Fraction]]] = {}
        for _, a, b, rate in sorted(edges):
            if root(a) != root(b):
                parent[root(b)] = root(a)
                tree.setdefault(a, []).append((b, 1 / rate))
                tree.setdefault(b, []).append((a, rate))
        relative: dict[int, Fraction] = {}
        for start in sorted(tree):
            if start in relative:
                continue
            relative[start] = Fraction(ref[start])
            todo = [start]
            while todo:
                k = todo.pop()
                for other, factor in tree[k]:  # p_other = p_k * factor
                    if other not in relative:
                        relative[other] = relative[k] * factor
                        todo.append(other)
        moves = {k: v / ref[k] for k, v in relative.items()}
        scale = 2 / (max(moves.values()) + min(moves.values()))
        prices = list(ref)
        for k, move in moves.items():
            exact = ref[k] * move * scale
            prices[k] = min(max(exact.numerator // exact.denominator, prep.lo[k]), prep.hi[k])
        return tuple(prices)

    # ------------------------------------------------------------ polish

    def moves(self, k: int, prices: tuple[int, ...]) -> list[int]:
        """Prices of leg k, nearest first on each side, at which an order of k starts or stops being
        eligible: for its last eligible level and its first ineligible one, the last price at which the
        level is eligible and the first at which it is not."""
        now, found = prices[k], set()
        for pair in self.outs[k]:  # eligible iff t >= ceil(limit * p_b / RATE_SCALE)
            count, pb = pair.eligible_levels(now, prices[pair.b]), prices[pair.b]
            for level in (count - 1, count):
                if 0 <= level < len(pair.limits):
                    edge = ceil_div(pair.limits[level] * pb, RATE_SCALE)
                    found.update((edge, edge - 1))
        for pair in self.ins[k]:  # eligible iff t <= floor(RATE_SCALE * p_a / limit)
            count, pa = pair.eligible_levels(prices[pair.a], now), prices[pair.a]
            for level in (count - 1, count):
                if 0 <= level < len(pair.limits):
                    edge = RATE_SCALE * pa // pair.limits[level]
                    found.update((edge, edge + 1))
        lo, hi = self.prep.lo[k], self.prep.hi[k]
        above = sorted(t for t in found if now < t <= hi)[:POLISH_WIDTH]
        below = sorted((t for t in found if lo <= t < now), reverse=True)[:POLISH_WIDTH]
        return above + below

    def polish(self, best: Point) -> Point:
        for _ in range(POLISH_ROUNDS):
            improved = False
            for k in self.legs:
                if len(self.cache) >= self.budget:
                    return best  # the evaluation budget is spent (a count, never a clock)
                options = [best.prices]
                for t in [*self.moves(k, best.prices), self.clear_leg(k, list(best.prices))]:
                    prices = list(best.prices)
                    prices[k] = t
                    options.append(tuple(prices))
                found = self.best(options)
                if self.rank(found) < self.rank(best):
                    best, improved = found, True
            if not improved:
                break
        return best

    def center(self, prices: tuple[int, ...]) -> tuple[int, ...]:
        """The same rates at the level closest to the reference (largest and smallest move opposite)."""
        ref = self.prep.reference
        moves = [Fraction(prices[k], ref[k]) for k in self.legs]
        scale = 2 / (max(moves) + min(moves))
        centred = list(prices)
        for k in self.legs:
            exact = prices[k] * scale
            centred[k] = min(max(round(exact), self.prep.lo[k]), self.prep.hi[k])
        return tuple(centred)

    def probes(self, count: int) -> list[tuple[int, ...]]:
        """`count` points spread evenly over the band (a Halton sequence: the k-th leg's coordinate is
        the radical inverse of i in the k-th prime), on the integer grid. Deterministic, exact."""
        points = []
        for i in range(1, count + 1):
            prices = list(self.prep.reference)
            for k, prime in zip(self.legs, _PRIMES, strict=False):
                lo, hi = self.prep.lo[k], self.prep.hi[k]
                prices[k] = lo + (hi - lo) * _radical_inverse(i, prime) // _radical_scale(i, prime)
            points.append(tuple(prices))
        return points

    def pin(self, prices: tuple[int, ...]) -> tuple[int, ...]:
        """Legs on no cycle cannot trade: they keep their reference price whatever a start proposed."""
        ref = self.prep.reference
        return tuple(p if k in self.on_cycles else ref[k] for k, p in enumerate(prices))

    def solve(self, proposals: list[tuple[int, ...]]) -> Point:
        small = sum(len(pair.limits) for pair in self.prep.pairs.values()) <= SMALL_BOOK
        self.budget = SMALL_BUDGET if small else LARGE_BUDGET
        starts = [self.prep.reference, *(self.pin(p) for p in proposals)]
        if (stitched := self.stitched()) is not None:
            starts.append(stitched)
        candidates = list(dict.fromkeys([*starts, *(self.balance(s) for s in starts)]))
        seeds = sorted((self.judge(p) for *_, p in self.pair_auctions()[:PAIR_SEEDS]), key=self.rank)
        self.budget += len(seeds)  # judging the seeds takes nothing from the polish
        probed = sorted((self.judge(p) for p in self.probes(PROBES if small else LARGE_PROBES)), key=self.rank)
        if small:  # every structured start, and the best pair seeds and probes, are refined
            chosen = [self.judge(c) for c in candidates] + seeds[:SEEDS_POLISHED] + probed[:PROBES_POLISHED]
        else:  # large books: the best few of all of them
            chosen = sorted([*(self.judge(c) for c in candidates), *seeds, *probed], key=self.rank)[:LARGE_POLISHED]
        best = self.best(self.polish(p).prices for p in chosen)
        if best.volume > 0:
            self.polish(self.judge(self.center(best.prices)))
        # Every point judged is an exact evaluation: the answer is the best of them all, so it is never
        # worse than any start (the reference, each pair's own auction, a proposal) or any probe.
        best = min(self.cache.values(), key=self.rank)
        if best.volume == 0 and (ring := ring_start(self.prep, self.legs)) is not None:
            self.polish(self.judge(ring))  # nothing found yet, but some ring can trade: start from it
            best = min(self.cache.values(), key=self.rank)
        return best


_PRIMES = (
    2,
    3,
    5,
    7,
    11,
    13,
    17,
    19,
    23,
    29,
    31,
    37,
    41,
    43,
    47,
    53,
    59,
    61,
    67,
    71,
    73,
    79,
    83,
    89,
    97,
    101,
    103,
    107,
    109,
    113,
    127,
    131,
)


def _radical_inverse(i: int, base: int) -> int:
    """The digits of i in `base`, mirrored after the point, as an integer over _radical_scale(i, base)."""
    digits = 0
    while i:
        i, digit = divmod(i, base)
        digits = digits * base + digit
    return digits


def _radical_scale(i: int, base: int) -> int:
    scale = 1
    while i:
        i //= base
        scale *= base
    return scale
