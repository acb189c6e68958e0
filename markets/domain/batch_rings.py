"""Whether anything can trade in a component, exactly: a bounded search for a ring of pairs whose most
willing orders can all be eligible at once at prices in the band. Internal to `markets.domain.batch`.

A positive volume at prices p needs a cycle of pairs each with an eligible level (a circulation with a
positive flow contains a cycle of arcs that carry it), and a pair has an eligible level exactly when its
most willing level is eligible. So some price vector in the band trades iff some simple cycle of pairs can
have its first levels eligible at once. For one cycle that is a system of monotone constraints
`p_b <= floor(RATE_SCALE * p_a / r_ab)` in the box `[lo, hi]`; its greatest integer solution, if there is
one, is reached from the top of the band by lowering each `p_b` to what its constraint allows until nothing
moves. A cycle whose limits multiply to more than 1 has no solution at any price.

Cycles are enumerated depth first from each leg (as their smallest leg), a path extended only while its
greatest solution (the top price of its first leg, carried forward) stays in the band, so the legs of a book
whose pairs are far apart are pruned at once. A count of extended paths bounds the work (never a clock):
within it the enumeration is complete, and a component of a few legs is always enumerated in full.
"""

from __future__ import annotations

from markets.domain.batch_book import Prepared
from oracle.units import RATE_SCALE

PATHS = 20_000  # extended paths per component: the bound of the enumeration


def ring_start(prep: Prepared, legs: list[int]) -> tuple[int, ...] | None:
    """Prices in the band at which some cycle of pairs trades (the greatest solution of the first cycle
    found, in a fixed order; the other legs at their reference), or None when no cycle can within the bound."""
    first: dict[tuple[int, int], int] = {}
    out: dict[int, list[int]] = {k: [] for k in legs}
    for (a, b), pair in sorted(prep.pairs.items()):
        if pair.limits and a in out and b in out:
            first[a, b] = pair.limits[0]
            out[a].append(b)
    lo, hi = prep.lo, prep.hi
    budget = PATHS
    for start in sorted(legs):
        stack = [(start, hi[start], (start,))]
        while stack:
            leg, price, path = stack.pop()
            for nxt in reversed(out[leg]):
                if nxt == start and len(path) > 1:
                    prices = _close(prep, first, path)
                    if prices is not None:
                        return prices
                elif nxt > start and nxt not in path:
                    carried = min(hi[nxt], RATE_SCALE * price // first[leg, nxt])
                    if carried >= lo[nxt]:
                        budget -= 1
                        if budget < 0:
                            return None
                        stack.append((nxt, carried, (*path, nxt)))
    return None


def _close(prep: Prepared, first: dict[tuple[int, int], int], path: tuple[int, ...]) -> tuple[int, ...] | None:
    """The greatest integer prices in the band at which every pair of the cycle `path` has its first level
    eligible, or None (no solution, or none reached within the bounded passes)."""
    arcs = [(path[i], path[(i + 1) % len(path)]) for i in range(len(path))]
    product, scale = 1, 1
    for arc in arcs:
        product *= first[arc]
        scale *= RATE_SCALE
    if product > scale:  # the limits around the ring ask for more than one: no prices meet them all
        return None
    prices = list(prep.reference)
    for k in path:
        prices[k] = prep.hi[k]
    for _ in range(4 * len(path) + 8):
        moved = False
        for a, b in arcs:
            allowed = RATE_SCALE * prices[a] // first[a, b]
            if allowed < prices[b]:
                if allowed < prep.lo[b]:
                    return None
                prices[b], moved = allowed, True
        if not moved:
            return tuple(prices)
    return None
