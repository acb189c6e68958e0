"""A proposal for the multi-leg price search: a mixed-integer program (after Walther 2018, MIP-I) that
chooses which limit levels to make eligible, so that ring trades no single price move reaches are found.
HiGHS through `scipy.optimize.milp`, with deterministic limits only (a node cap, no wall clock).

The program works in relative prices t_k = p_k / P_k and in units valued at the reference prices
u_g = P_give * units (so its objective is exactly the batch's volume). Its one approximation: it conserves
value at the reference prices instead of the clearing prices (which would make it bilinear). Its answer is
therefore only a start: the prices it proposes are rounded to the grid and judged, like every other
candidate, by the exact fill at those prices (`batch_flow.evaluate`). Nothing the solver returns is
committed without that exact evaluation.

    max  sum_g u_g - EPS * sum_k d_k                        (volume, then closest to the reference)
    s.t. sum_{g out of k} u_g = sum_{g into k} u_g          (every leg k)
         0 <= u_g <= C_g z_g                                 (C_g = P_give * units of level g)
         t_a - kappa_g t_b >= -M_g (1 - z_g)                 (z_g = 1: level g's limit is met)
         z_g >= z_h  for the levels g before h of a pair     (the more willing first)
         lo_k/P_k <= t_k <= hi_k/P_k,  d_k >= |t_k - 1|

with kappa_g = limit_g * P_b / (RATE_SCALE * P_a). Levels whose limit is met everywhere in the band need no
binary; levels met nowhere are left out. A book with more than MAX_BINARIES levels in between gets no
proposal: its search starts from the reference and the pairwise auctions (large books are dense, and node
clearing finds their rings; measured in bench/clearing.py).
"""

from __future__ import annotations

from fractions import Fraction

from markets.domain.batch_book import Prepared
from oracle.units import RATE_SCALE

MAX_BINARIES = 64
NODE_LIMIT = 400
EPS = 1e-6


class SolverFailed(RuntimeError):
    """The solver broke (not: it stopped at its node cap, which still gives a proposal or none)."""


def _levels(prep: Prepared, legs: list[int]):
    """(a, b, kappa, units, needs_binary) per level (or bucket) that can be eligible inside the band."""
    ref, lo, hi = prep.reference, prep.lo, prep.hi
    if sum(len(pair.limits) for pair in prep.pairs.values()) > 4 * MAX_BINARIES:
        return []  # more levels than a bounded program takes (see below), whatever the band keeps
    found = []
    for (a, b), pair in sorted(prep.pairs.items()):
        lowest = Fraction(lo[a] * ref[b], ref[a] * hi[b])  # the smallest t_a / t_b in the band
        highest = Fraction(hi[a] * ref[b], ref[a] * lo[b])
        rows = []
        for level, limit in enumerate(pair.limits):
            kappa = Fraction(limit * ref[b], RATE_SCALE * ref[a])
            if kappa > highest:
                break
            rows.append([kappa, pair.prefix[level + 1] - pair.prefix[level], kappa > lowest])
        found.append((a, b, rows))
    if sum(row[2] for _, _, rows in found for row in rows) > MAX_BINARIES:
        return []  # too many for a bounded program: the search does without a proposal
    return [(a, b, kappa, units, binary) for a, b, rows in found for kappa, units, binary in rows]


def propose(prep: Prepared, legs: list[int]) -> list[tuple[int, ...]]:
    """Integer price vectors proposed by the program (none if it found nothing to trade)."""
    ref = prep.reference
    levels = _levels(prep, legs)
    if not levels:
        return []
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    col = {k: i for i, k in enumerate(legs)}  # t_k, then d_k, then u_g, then z_g
    n = len(legs)
    scale = max(Fraction(ref[a] * units) for a, _, _, units, _ in levels)
    ncols = 2 * n + 2 * len(levels)
    lower, upper = np.zeros(ncols), np.zeros(ncols)
    cost, integrality = np.zeros(ncols), np.zeros(ncols)
    for k, i in col.items():
        lower[i], upper[i] = prep.lo[k] / ref[k], prep.hi[k] / ref[k]
        upper[n + i] = 1.0
        cost[n + i] = EPS
    rows, lows, highs = [], [], []

    def row(entries: dict[int, float], low: float, high: float) -> None:
        line = np.zeros(ncols)
        for j, v in entries.items():
            line[j] += v
        rows.append(line)
        lows.append(low)
        highs.append(high)

    for i in col.values():
        row({i: 1.0, n + i: -1.0}, -np.inf, 1.0)  # d_k >= t_k - 1
        row({i: 1.0, n + i: 1.0}, 1.0, np.inf)  # d_k >= 1 - t_k
    balance = {k: {} for k in legs}
    previous: dict[tuple[int, int], int] = {}
    for g, (a, b, kappa, units, binary) in enumerate(levels):
        u, z = 2 * n + g, 2 * n + len(levels) + g
        capacity = float(Fraction(ref[a] * units) / scale)
        cost[u] = -1.0
        upper[u] = capacity
        balance[a][u] = balance[a].get(u, 0.0) + 1.0
        balance[b][u] = balance[b].get(u, 0.0) - 1.0
        if binary:
            integrality[z], upper[z] = 1, 1.0
            row({u: 1.0, z: -capacity}, -np.inf, 0.0)
            big = float(kappa) * upper[col[b]] - lower[col[a]]
            row({col[a]: 1.0, col[b]: -float(kappa), z: -big}, -big, np.inf)
            if (a, b) in previous:
                row({previous[a, b]: 1.0, z: -1.0}, 0.0, np.inf)
            previous[a, b] = z
        else:
            lower[z] = upper[z] = 1.0
    for k in legs:
        row(balance[k], 0.0, 0.0)
    try:
        found = milp(
            cost,
            integrality=integrality,
            bounds=Bounds(lower, upper),
            constraints=LinearConstraint(np.array(rows), np.array(lows), np.array(highs)),
            options={"node_limit": NODE_LIMIT, "mip_rel_gap": 1e-9, "presolve": True, "disp": False},
        )
    except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - a broken solver, not a limit
        raise SolverFailed(str(exc)) from exc
    if found.x is None or -found.fun < 1e-9:
        return []
    prices = list(ref)
    for k, i in col.items():
        exact = Fraction(float(found.x[i])) * ref[k]
        prices[k] = min(max(round(exact), prep.lo[k]), prep.hi[k])
    chosen = [
        (a, b, kappa) for g, (a, b, kappa, _, binary) in enumerate(levels) if found.x[2 * n + len(levels) + g] > 0.5
    ]
    repaired = enforce(prep, prices, [(a, b, kappa * RATE_SCALE * ref[a] / ref[b]) for a, b, kappa in chosen])
    return [tuple(prices)] if repaired is None else list(dict.fromkeys([repaired, tuple(prices)]))


def enforce(prep: Prepared, start: list[int], required: list[tuple[int, int, Fraction]]) -> tuple[int, ...] | None:
    """Integer prices near `start` at which every required limit (a, b, limit) is met exactly
    (limit * p_b <= RATE_SCALE * p_a): raise p_a to the least price that meets it, or else lower p_b;
    None if the band does not allow it within a bounded number of passes."""
    prices = list(start)
    for _ in range(4 * len(required) + 8):
        moved = False
        for a, b, limit in required:
            if limit * prices[b] <= RATE_SCALE * prices[a]:
                continue
            moved = True
            need = limit * prices[b] / RATE_SCALE
            raised = -((-need.numerator) // need.denominator)
            if raised <= prep.hi[a]:
                prices[a] = raised
                continue
            room = RATE_SCALE * prices[a] / limit
            lowered = room.numerator // room.denominator
            if lowered < prep.lo[b]:
                return None
            prices[b] = lowered
        if not moved:
            return tuple(prices)
    return None
