"""The fill at fixed prices, exactly: which orders are eligible, how much value flows between the legs, and
which orders that flow goes to. Internal to `markets.domain.batch`.

At fixed prices p the problem is a circulation (Walther 2018, section 3.5; SPEEDEX's fixed-price LP): one
arc per leg pair (a, b) carrying value f_ab (10**-12 money at the clearing prices) up to the eligible
capacity p_a * S_ab, value conserved at every leg (which is unit conservation at uniform rates). Its
objective is the volume: sum_ab f_ab * P_a / p_a, the units given valued at the reference prices. The
constraint matrix is a network matrix, so with integer capacities and costs the network simplex returns an
integral optimum exactly (networkx, pure Python integers, no tolerance).

Among circulations of maximal volume the trader surplus (CoW's objective) decides: phase 2 keeps every
arc whose reduced cost forces it and maximises the surplus on the others, level by level. Inside a pair the
value goes to the most willing levels first; the marginal level shares pro rata.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from markets.domain.batch_book import Point, Prepared
from oracle.units import RATE_SCALE

Arc = tuple[int, int]


def _on_cycles(arcs: list[Arc]) -> list[Arc]:
    """The arcs that may lie on a cycle: drop, repeatedly, arcs at a leg with nothing in or nothing out."""
    live = set(arcs)
    while True:
        tails = {a for a, _ in live}
        heads = {b for _, b in live}
        keep = {(a, b) for a, b in live if a in heads and b in tails}
        if keep == live:
            return sorted(live)
        live = keep


def _network_simplex(arcs: list[Arc], caps: dict[Arc, int], costs: dict[Arc, int]) -> dict[Arc, int]:
    """A min-cost circulation (all demands zero), exact in integers; arcs added in sorted order."""
    import networkx as nx

    graph = nx.DiGraph()
    for a, b in arcs:
        graph.add_edge(a, b, capacity=caps[a, b], weight=costs[a, b])
    for node in graph.nodes:
        graph.nodes[node]["demand"] = 0
    _, flow = nx.network_simplex(graph)
    return {(a, b): flow[a][b] for a, b in arcs}


def integer_costs(prep: Prepared, prices: Sequence[int], arcs: list[Arc]) -> dict[Arc, int]:
    """The arcs' costs -P_a / p_a scaled by L = lcm of the p_a to integers (same optimum, exact)."""
    scale = math.lcm(*{prices[a] for a, _ in arcs})
    return {(a, b): -prep.reference[a] * (scale // prices[a]) for a, b in arcs}


def circulation(prep: Prepared, prices: Sequence[int], units: dict[Arc, int]) -> dict[Arc, int]:
    """The value flows of maximal volume (exact): HiGHS's basis certified in exact arithmetic, or else
    networkx's network simplex in integers."""
    arcs = _on_cycles(list(units))
    if not arcs:
        return {}
    caps = {(a, b): prices[a] * units[a, b] for a, b in arcs}
    if len(arcs) == 2:  # two legs: both arcs carry the smaller capacity
        (a, b), back = arcs
        flow = min(caps[a, b], caps[back])
        return {(a, b): flow, back: flow}
    if prep.solver is None:
        from markets.domain.batch_lp import CirculationLP

        every = sorted(prep.pairs)
        prep.solver = CirculationLP(every, sorted({a for a, _ in every} | {b for _, b in every}))
    costs = integer_costs(prep, prices, arcs)
    flows = prep.solver.solve(caps, costs)
    if flows is None:
        flows = _network_simplex(arcs, caps, costs)
    return {arc: f for arc, f in flows.items() if f}


def evaluate(prep: Prepared, prices: Sequence[int]) -> Point:
    """The volume and imbalance of the best fill at `prices` (exact)."""
    prices = tuple(prices)
    units = prep.units(prices)
    return point(prep, prices, units, circulation(prep, prices, units))


def point(prep: Prepared, prices: tuple[int, ...], units: dict[Arc, int], flows: dict[Arc, int]) -> Point:
    ref = prep.reference
    scale = math.lcm(*{prices[a] for a, _ in flows}) if flows else 1
    volume = Fraction(sum(ref[a] * f * (scale // prices[a]) for (a, _), f in flows.items()), scale)
    eligible = sum(ref[a] * u for (a, _), u in units.items())
    return Point(prices, volume, eligible - volume, flows)


# ---------------------------------------------------------------- ties between circulations


def _potentials(arcs: list[Arc], caps, costs, flows) -> dict[int, int]:
    """Node potentials certifying the optimum (Bellman-Ford on the residual graph, exact)."""
    edges = []
    for a, b in arcs:
        if flows.get((a, b), 0) < caps[a, b]:
            edges.append((a, b, costs[a, b]))
        if flows.get((a, b), 0) > 0:
            edges.append((b, a, -costs[a, b]))
    nodes = {a for a, _ in arcs} | {b for _, b in arcs}
    dist = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        changed = False
        for u, v, c in edges:
            if dist[u] + c < dist[v]:
                dist[v] = dist[u] + c
                changed = True
        if not changed:
            return dist
    raise ArithmeticError("the circulation is not optimal")  # a negative cycle: cannot happen


def _free_cycle(free: list[Arc], caps, flows) -> bool:
    """Whether the flows on the free arcs can move along some cycle (the optimum is not unique)."""
    moves: dict[int, list[tuple[int, Arc]]] = {}
    for a, b in free:
        if flows.get((a, b), 0) < caps[a, b]:
            moves.setdefault(a, []).append((b, (a, b)))
        if flows.get((a, b), 0) > 0:
            moves.setdefault(b, []).append((a, (a, b)))
    for start, outs in moves.items():
        for nxt, arc in outs:
            seen, todo = {nxt}, [nxt]
            while todo:
                node = todo.pop()
                for far, other in moves.get(node, ()):
                    if other == arc:
                        continue
                    if far == start:
                        return True
                    if far not in seen:
                        seen.add(far)
                        todo.append(far)
    return False


def _surplus_phase(prep: Prepared, prices, units, caps, free: list[Arc], fixed: dict[Arc, int]) -> dict[Arc, int]:
    """Maximise the trader surplus over the free arcs, each split into its limit levels; the fixed arcs'
    flows are the legs' supplies and demands. Exact integers (networkx min-cost flow)."""
    import networkx as nx

    scale = math.lcm(*{RATE_SCALE * prices[a] for a, _ in free})
    graph = nx.MultiDiGraph()
    demand: dict[int, int] = {}
    for (a, b), f in fixed.items():
        demand[a] = demand.get(a, 0) + f
        demand[b] = demand.get(b, 0) - f
    for a, b in free:
        pair = prep.pairs[a, b]
        left = caps[a, b]
        for level, limit in enumerate(pair.limits[: pair.eligible_levels(prices[a], prices[b])]):
            cap = min(left, prices[a] * (pair.prefix[level + 1] - pair.prefix[level]))
            left -= cap
            gain = (RATE_SCALE * prices[a] - limit * prices[b]) * (scale // (RATE_SCALE * prices[a]))
            graph.add_edge(a, b, key=level, capacity=cap, weight=-gain)
    for node in graph.nodes:
        graph.nodes[node]["demand"] = demand.get(node, 0)
    flow = nx.min_cost_flow(graph)
    result = dict(fixed)
    for a, b in free:
        total = sum(flow[a][b].values())
        if total:
            result[a, b] = total
    return {arc: f for arc, f in result.items() if f}


def settle_flows(prep: Prepared, prices: tuple[int, ...]) -> Point:
    """The circulation the fill uses: maximal volume, then maximal surplus (see the module docstring)."""
    units = prep.units(prices)
    flows = circulation(prep, prices, units)
    arcs = _on_cycles(list(units))
    if len(arcs) > 2:
        caps = {(a, b): prices[a] * units[a, b] for a, b in arcs}
        costs = integer_costs(prep, prices, arcs)
        pot = _potentials(arcs, caps, costs, flows)
        reduced = {(a, b): costs[a, b] + pot[a] - pot[b] for a, b in arcs}
        free = [arc for arc in arcs if reduced[arc] == 0]
        if free and _free_cycle(free, caps, flows):
            fixed = {arc: caps[arc] for arc in arcs if reduced[arc] < 0}
            flows = _surplus_phase(prep, prices, units, caps, free, fixed)
    return point(prep, prices, units, flows)


def allocate(prep: Prepared, prices: tuple[int, ...], flows: dict[Arc, int]) -> dict[int, Fraction]:
    """Units each order gives (exact): per pair the most willing levels fill first, in full; the marginal
    level shares what is left pro rata to quantity; no time priority inside a batch."""
    given: dict[int, Fraction] = {}
    for (a, b), value in sorted(flows.items()):
        pair = prep.pairs[a, b]
        left = Fraction(value, prices[a])
        for level, members in enumerate(pair.members):
            if left <= 0:
                break
            size = pair.prefix[level + 1] - pair.prefix[level]
            if left >= size:
                for order_id, quantity in members:
                    given[order_id] = Fraction(quantity)
                left -= size
            else:
                for order_id, quantity in members:
                    given[order_id] = left * quantity / size
                left = Fraction(0)
    return given
