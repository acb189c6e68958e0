"""The fixed-price circulation solved fast and still exactly: HiGHS's dual simplex (warm-started, as the
search moves one price at a time) proposes a basis; exact integer and Fraction arithmetic rebuilds the flows
from that basis and certifies them optimal (primal bounds and the sign of every reduced cost). A basis that
does not certify falls back to networkx's network simplex, exact in integers. So what the search compares is
always the exact optimum, whatever path the floating-point solver took.

The LP: one column per arc (a, b) with value flow 0 <= f <= cap (10**-12 at the clearing prices) and cost
-P_a / p_a (its units valued at the reference prices), one equality row per leg (flow out = flow in).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

Arc = tuple[int, int]
_quiet = threading.Lock()
_started = False


def _new_highs():
    """A silent, single-threaded Highs instance. The library prints a banner on stdout the first time one is
    made in a process (before any option can be set); that one construction runs with stdout pointed at
    /dev/null.

    One thread for every instance, not only the program's: HiGHS keeps one task scheduler per process, sized
    by the `threads` option of the first instance that runs, and refuses to run (kError) an instance asking
    for another size. An LP left at the default (all cores) that ran first made every later program fail, so
    the same book cleared or failed depending on what the process had cleared before."""
    global _started
    import highspy

    with _quiet:
        if _started:
            solver = highspy.Highs()
        else:
            _started = True
            try:
                sys.stdout.flush()
                saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
            except (OSError, ValueError, AttributeError):  # no stdout (a daemon): nothing to hide either
                return _silenced(highspy.Highs())
            os.dup2(null, 1)
            try:
                solver = highspy.Highs()
                ctypes.CDLL(None).fflush(None)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(null)
    return _silenced(solver)


def _silenced(solver):
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("threads", 1)
    return solver


def _lp_solver():
    solver = _new_highs()
    solver.setOptionValue("presolve", "off")
    # Tight tolerances: the certificate below is exact, and a basis HiGHS accepts within a looser tolerance
    # would fail it more often (each failure costs an exact solve in pure Python).
    solver.setOptionValue("primal_feasibility_tolerance", 1e-10)
    solver.setOptionValue("dual_feasibility_tolerance", 1e-12)
    return solver


class CirculationLP:
    """Max-volume circulations over a fixed set of arcs, re-solved as capacities and prices change."""

    def __init__(self, arcs: list[Arc], nodes: list[int]) -> None:
        import highspy
        import numpy as np

        self.np, self.highspy = np, highspy
        self.arcs = arcs
        self.nodes = nodes
        self.row = {k: i for i, k in enumerate(nodes)}
        self.solver = _lp_solver()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(arcs), len(nodes)
        lp.col_cost_ = np.zeros(len(arcs))
        lp.col_lower_ = np.zeros(len(arcs))
        lp.col_upper_ = np.zeros(len(arcs))
        lp.row_lower_ = np.zeros(len(nodes))
        lp.row_upper_ = np.zeros(len(nodes))
        starts, index, value = [0], [], []
        for a, b in arcs:
            index += [self.row[a], self.row[b]]
            value += [1.0, -1.0]
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value)
        self.solver.passModel(lp)
        self.cols = np.arange(len(arcs), dtype=np.int32)

    def solve(self, caps: dict[Arc, int], costs: dict[Arc, int]) -> dict[Arc, int] | None:
        """The exact optimal flows for integer `caps` and integer `costs` (arcs not in caps are closed),
        or None when HiGHS's basis does not certify (the caller then solves exactly another way)."""
        np = self.np
        top = max(caps.values(), default=1) or 1
        unit = max((abs(c) for c in costs.values()), default=1) or 1
        upper = np.array([caps.get(arc, 0) / top for arc in self.arcs])
        cost = np.array([costs.get(arc, 0) / unit for arc in self.arcs])
        self.solver.changeColsBounds(len(self.arcs), self.cols, np.zeros(len(self.arcs)), upper)
        self.solver.changeColsCost(len(self.arcs), self.cols, cost)
        self.solver.run()
        if self.solver.getModelStatus() != self.highspy.HighsModelStatus.kOptimal:
            return None
        basis = self.solver.getBasis()
        return _certify(self, caps, costs, list(basis.col_status), list(basis.row_status))


def _certify(lp: CirculationLP, caps, costs, col_status, row_status) -> dict[Arc, int] | None:
    """Rebuild the basic solution exactly and check it is feasible and optimal; None if it is not."""
    basic_kind = lp.highspy.HighsBasisStatus.kBasic
    upper_kind = lp.highspy.HighsBasisStatus.kUpper
    flows: dict[Arc, int] = {}
    excess = dict.fromkeys(lp.nodes, 0)  # flow out minus flow in, from the nonbasic arcs
    tree: dict[int, list[tuple[Arc, int]]] = {k: [] for k in lp.nodes}
    basic_arcs = []
    for arc, status in zip(lp.arcs, col_status, strict=True):
        cap = caps.get(arc, 0)
        if status == basic_kind:
            basic_arcs.append(arc)
            tree[arc[0]].append((arc, arc[1]))
            tree[arc[1]].append((arc, arc[0]))
        else:
            flows[arc] = cap if status == upper_kind else 0
            excess[arc[0]] += flows[arc]
            excess[arc[1]] -= flows[arc]
    roots = [k for k, status in zip(lp.nodes, row_status, strict=True) if status == basic_kind]
    # Each tree of basic arcs hangs from one basic row; solve it from the leaves up, exactly.
    order, parent, seen = [], {}, set()
    potential: dict[int, int] = {}
    for root in roots:
        if root in seen:
            return None
        seen.add(root)
        potential[root] = 0
        todo = [root]
        while todo:
            node = todo.pop()
            order.append(node)
            for arc, other in tree[node]:
                if other in seen:
                    if parent.get(node, (None,))[0] != arc:
                        return None  # a cycle of basic arcs: not a basis
                    continue
                seen.add(other)
                parent[other] = (arc, node)
                # Reduced cost zero on a basic arc (a, b): cost - pi_a + pi_b = 0.
                step = costs.get(arc, 0)
                potential[other] = potential[node] - step if other == arc[1] else potential[node] + step
                todo.append(other)
    if len(seen) != len(lp.nodes) or len(basic_arcs) + len(roots) != len(lp.nodes):
        return None
    for node in reversed(order):
        if node not in parent:
            if excess[node] != 0:
                return None
            continue
        arc, _ = parent[node]
        flow = -excess[node] if arc[0] == node else excess[node]  # balance this node with its arc
        if not 0 <= flow <= caps.get(arc, 0):
            return None
        flows[arc] = flow
        excess[arc[0]] += flow
        excess[arc[1]] -= flow
    basic = set(basic_arcs)
    for arc in lp.arcs:
        if arc in basic:
            continue
        reduced = costs.get(arc, 0) - potential[arc[0]] + potential[arc[1]]
        if (flows[arc] < caps.get(arc, 0) and reduced < 0) or (flows[arc] > 0 and reduced > 0):
            return None
    return {arc: f for arc, f in flows.items() if f}
