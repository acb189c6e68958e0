"""A proposal for the multi-leg price search: a mixed-integer program (after Walther 2018, MIP-I) that
chooses which limit levels to make eligible, so that ring trades no single price move reaches are found.
HiGHS (highspy), one thread, a fixed seed and deterministic limits only (a node cap, no wall clock).

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
from markets.domain.batch_lp import _new_highs
from oracle.units import RATE_SCALE

MAX_BINARIES = 64
NODE_LIMIT = 400
EPS = 1e-6
ROUNDS = 3
# A level's capacity in the program, relative to the largest, is at least this: HiGHS's tolerances (1e-7 to
# 1e-6) would otherwise read a ring of a few base units beside 10**9-unit orders as no trade at all. The
# program only proposes (every proposal is judged exactly), so overvaluing tiny levels costs nothing.
SMALLEST = 1e-6


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
    """Integer price vectors proposed by the program (none if it found nothing to trade). The program is
    solved again with the value of each leg converted at the relative prices it proposed (a sequential
    linearisation of the clearing-price conservation), up to ROUNDS times or until its choice repeats."""
    levels = _levels(prep, legs)
    if not levels:
        return []
    proposals: list[tuple[int, ...]] = []
    factors = dict.fromkeys(legs, 1.0)
    seen = set()
    for _ in range(ROUNDS):
        try:
            solved = _program(prep, legs, levels, factors)
        except SolverFailed:
            if not proposals:
                raise
            break  # a later round that fails keeps what the earlier ones proposed
        if solved is None or solved[1] in seen:
            break
        relative, picked = solved
        seen.add(picked)
        proposals += _grid(prep, legs, levels, relative, picked)
        factors = relative
    return list(dict.fromkeys(proposals))


def _grid(prep: Prepared, legs, levels, relative: dict[int, float], picked) -> list[tuple[int, ...]]:
    """The program's relative prices on the integer grid, and repaired so that the levels it chose are
    eligible exactly (up and down)."""
    ref = prep.reference
    prices = list(ref)
    for k in legs:
        prices[k] = min(max(round(Fraction(relative[k]) * ref[k]), prep.lo[k]), prep.hi[k])
    required = [
        (levels[g][0], levels[g][1], levels[g][2] * RATE_SCALE * ref[levels[g][0]] / ref[levels[g][1]]) for g in picked
    ]
    repaired = [enforce(prep, prices, required, up) for up in (True, False)]
    return [*(p for p in repaired if p is not None), tuple(prices)]


def _program(prep: Prepared, legs, levels, factors: dict[int, float]):
    """Solve the program with value converted between legs at `factors` (relative prices); its relative
    prices and the levels it made eligible, or None if it trades nothing."""
    import highspy
    import numpy as np

    ref = prep.reference
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
        capacity = max(float(Fraction(ref[a] * units) / scale), SMALLEST)
        cost[u] = -1.0
        upper[u] = capacity
        balance[a][u] = balance[a].get(u, 0.0) + factors[a]  # value given out of a, at a's factor
        balance[b][u] = balance[b].get(u, 0.0) - factors[a]  # is the value b receives
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
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncols, len(rows)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = np.array(lows), np.array(highs)
    matrix = np.array(rows)
    starts, index, value = [0], [], []
    for j in range(ncols):  # column-wise, the nonzeros only
        nonzero = np.nonzero(matrix[:, j])[0]
        index += nonzero.tolist()
        value += matrix[nonzero, j].tolist()
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous for flag in integrality
    ]
    solver = _new_highs()
    for option, setting in (("mip_max_nodes", NODE_LIMIT), ("mip_rel_gap", 1e-9), ("threads", 1), ("random_seed", 0)):
        solver.setOptionValue(option, setting)
    if solver.passModel(lp) == highspy.HighsStatus.kError or solver.run() == highspy.HighsStatus.kError:
        raise SolverFailed(f"HiGHS could not solve the program ({solver.getModelStatus()})")
    info = solver.getInfo()
    if info.primal_solution_status != 2 or -info.objective_function_value < 1e-9:  # 2: a feasible point
        return None
    x = solver.getSolution().col_value
    relative = {k: float(x[i]) for k, i in col.items()}
    picked = tuple(g for g in range(len(levels)) if x[2 * n + len(levels) + g] > 0.5)
    return relative, picked


def enforce(prep: Prepared, start: list[int], required: list[tuple[int, int, Fraction]], up: bool):
    """Integer prices near `start` at which every required limit (a, b, limit) is met exactly
    (limit * p_b <= RATE_SCALE * p_a), or None. Upwards: raise each p_a that misses to the least price that
    meets it, until nothing misses (the least such vector above `start`); downwards: lower each p_b to the
    greatest price that meets it. Both are monotone, so each ends (bounded passes)."""
    prices = list(start)
    for _ in range(8 * len(prices) + 16):
        moved = False
        for a, b, limit in required:
            if limit * prices[b] <= RATE_SCALE * prices[a]:
                continue
            moved = True
            if up:
                need = limit * prices[b] / RATE_SCALE
                prices[a] = -((-need.numerator) // need.denominator)
                if prices[a] > prep.hi[a]:
                    return None
            else:
                room = RATE_SCALE * prices[a] / limit
                prices[b] = room.numerator // room.denominator
                if prices[b] < prep.lo[b]:
                    return None
        if not moved:
            return tuple(prices)
    return None
