"""`python -m bench.clearing`: how long a batch auction takes to clear (markets.domain.batch), and beside it
the bare solve of the same instance (one fixed-price circulation, the solver call alone).

    .venv/bin/python -m bench.clearing                  # 100, 1,000 and 10,000 orders over 4, 8 and 32 legs
    .venv/bin/python -m bench.clearing --quick          # 100 and 1,000 orders over 4 and 8 legs
    .venv/bin/python -m bench.clearing --sizes 8x10000  # one size
    .venv/bin/python -m bench.clearing --no-timings --samples 1000   # the search's miss rate only
    .venv/bin/python -m bench.clearing --json out.json

Books are random but seeded: reference prices from 1 to 10,000, limits within 10% of the reference rate,
quantities up to 1,000 units, 30 owners. Times are the best of --repeats warm runs (the first run, which
imports numpy and HiGHS, is left out) on a machine whose 2 cores are shared: read them as upper bounds.
"Written and committed" appends the canonical event and one row per fill to a scratch SQLite file
(WAL, synchronous=FULL) in one transaction: a stand-in for the service, which does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from markets.domain import batch_flow, batch_milp, batch_multi
from markets.domain.batch import Clearing, Leg, Order, canonical_json, check, clear, make_book, result_to_dict, search
from markets.domain.batch_book import Prepared, prepare
from markets.domain.batch_flow import _on_cycles, allocate, integer_costs, settle_flows
from markets.domain.batch_search import TwoLeg
from markets.domain.rounding import integerize

GOAL = (8, 10_000, 1.0)  # legs, orders, seconds: clear, written and committed


def book(seed: int, legs: int, orders: int):
    rng = random.Random(seed)
    reference = [rng.randint(10**6, 10**10) for _ in range(legs)]
    rows = []
    for i in range(orders):
        give = rng.randrange(legs)
        get = rng.randrange(legs - 1)
        get += get >= give
        rate = Fraction(reference[give], reference[get]) * Fraction(rng.randint(900, 1100), 1000)
        rows.append(Order(i + 1, rng.randint(1, 30), give, get, rng.randint(10**6, 10**9), max(1, int(rate * 10**8))))
    return make_book([f"L{k}" for k in range(legs)], reference, Fraction(1, 10), rows)


def _best(fn, repeats: int):
    best, result = None, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def _write(result, path: Path) -> float:
    """One transaction: the event (canonical JSON) and a row per fill, synchronous=FULL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, payload TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS fill (event INTEGER, ord INTEGER, given INTEGER, received INTEGER)")
    start = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    event = db.execute("INSERT INTO event (payload) VALUES (?)", (canonical_json(result_to_dict(result)),)).lastrowid
    if isinstance(result, Clearing):
        db.executemany(
            "INSERT INTO fill VALUES (?, ?, ?, ?)", [(event, f.order, f.given, f.received) for f in result.fills]
        )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def measure(legs: int, orders: int, repeats: int, workdir: Path) -> dict:
    b = book(legs * 100_003 + orders, legs, orders)
    clear(b)  # warm: imports, first HiGHS instance
    total, result = _best(lambda: clear(b), repeats)
    prep = prepare(len(b.legs), b.reference, b.band, b.orders)
    counted = [0]
    original = batch_multi.evaluate

    def counting(*args):
        counted[0] += 1
        return original(*args)

    batch_multi.evaluate = counting
    try:
        search_time, found = _best(
            lambda: search(prepare(len(b.legs), b.reference, b.band, b.orders), batch_milp.propose), 1
        )
    finally:
        batch_multi.evaluate = original
    row = {"legs": legs, "orders": orders, "clear_s": total, "search_s": search_time, "evaluations": counted[0]}
    row["per_order_us"] = total / orders * 1e6
    row["result"] = "cleared" if isinstance(result, Clearing) else result.reason
    if found is not None:
        prices = found[0]
        fills_time, settled = _best(lambda: settle_flows(prep, prices), repeats)
        by_id = {o.id: o for o in b.orders}
        exact = allocate(prep, prices, settled.flows)
        legs_exact = [Leg(i, by_id[i].give, by_id[i].get, by_id[i].limit, y) for i, y in sorted(exact.items()) if y > 0]
        row["round_s"], _ = _best(lambda: integerize(legs_exact, prices, len(b.legs)), repeats)
        row["fills_s"] = fills_time
        row["check_s"], _ = _best(lambda: check(b, result), repeats)
        row["bare_s"], row["exact_s"] = _bare(prep, prices, repeats)
    row["fills"] = len(result.fills) if isinstance(result, Clearing) else 0
    row["write_s"] = min(_write(result, workdir / f"clearing-{legs}-{orders}-{i}.sqlite3") for i in range(repeats))
    row["total_s"] = total + row["write_s"]
    return row


def _bare(prep, prices, repeats: int) -> tuple[float, float]:
    """The solver call alone on the fixed-price circulation at the clearing prices: HiGHS on a fresh model
    (no warm start), and the exact certified solve the search uses (warm HiGHS + exact certificate)."""
    from markets.domain.batch_lp import CirculationLP

    units = prep.units(prices)
    arcs = _on_cycles(list(units))
    if len(arcs) <= 2:
        return 0.0, 0.0
    caps = {(a, b): prices[a] * units[a, b] for a, b in arcs}
    costs = integer_costs(prep, prices, arcs)
    every = sorted(prep.pairs)
    nodes = sorted({a for a, _ in every} | {b for _, b in every})

    def fresh():
        lp = CirculationLP(every, nodes)
        top, unit = max(caps.values()), max(abs(c) for c in costs.values())
        np = lp.np
        lp.solver.changeColsBounds(
            len(every), lp.cols, np.zeros(len(every)), np.array([caps.get(a, 0) / top for a in every])
        )
        lp.solver.changeColsCost(len(every), lp.cols, np.array([costs.get(a, 0) / unit for a in every]))
        start = time.perf_counter()
        lp.solver.run()
        return time.perf_counter() - start

    bare = min(fresh() for _ in range(repeats))
    warm = CirculationLP(every, nodes)
    warm.solve(caps, costs)
    exact, _ = _best(lambda: batch_flow.circulation(prep, prices, units), repeats)
    return bare, exact


def wide_book(rng: random.Random):
    """A book of the property tests' kind (markets/tests/test_batch_clearing.py): 3 to 6 legs, 1 to 30
    orders, prices from 0.1 to 10,000, limits within 20% of the reference rate (some at 50% or 150%, far
    outside the band), bands from 5% to 20%, quantities from one base unit to 1,000 units, 5 owners."""
    legs = rng.randint(3, 6)
    reference = [rng.randint(10**5, 10**10) for _ in range(legs)]
    if rng.random() < 0.2:
        reference = [reference[0]] * legs
    band = rng.choice([Fraction(1, 10), Fraction(1, 10), Fraction(1, 20), Fraction(1, 5)])
    rows = []
    for i in range(rng.randint(1, 30)):
        give = rng.randrange(legs)
        get = rng.randrange(legs - 1)
        get += get >= give
        move = rng.choice([50, 100, 150]) if rng.random() < 0.2 else rng.randint(80, 120)
        limit = max(1, reference[give] * move * 10**8 // (reference[get] * 100))
        quantity = rng.randint(1, 10**9) if rng.random() < 0.7 else rng.randint(1, 1000)
        rows.append(Order(i + 1, rng.randint(1, 5), give, get, quantity, limit))
    return make_book([f"L{k}" for k in range(legs)], reference, band, rows)


def pair_floor(prep) -> int:
    """The volume the best single pair's own call auction makes (the other legs at the reference)."""
    best = 0
    for a, b in sorted(prep.pairs):
        if a < b and (b, a) in prep.pairs:
            sub = Prepared(prep.n, prep.reference, prep.lo, prep.hi, {k: prep.pairs[k] for k in ((a, b), (b, a))})
            solved = TwoLeg(sub, a, b).solve()
            best = max(best, solved.volume if solved is not None else 0)
    return best


def samples(books: int, kind: str = "bench", draws: int = 60, seed: int = 20261207) -> dict:
    """The measured quality of the multi-leg search on `books` random books of 3 to 6 legs: how often one of
    `draws` random price vectors in the band beats it (`beaten`, with the largest shortfall), how often it
    trades nothing while a sampled vector, a pair's own auction or the reference would (`missed`), and how
    often it does worse than the best pair's auction or the reference (`below_floor`; guaranteed 0)."""
    rng = random.Random(seed)
    out = {"books": books, "kind": kind, "cleared": 0, "beaten": 0, "missed": 0, "below_floor": 0, "failed": 0}
    worst, started = Fraction(0), time.perf_counter()
    for _ in range(books):
        if kind == "wide":
            b = wide_book(rng)
        else:
            b = book(rng.randrange(10**9), rng.randint(3, 6), rng.randint(1, 30))
        prep = prepare(len(b.legs), b.reference, b.band, b.orders)
        try:
            found = search(prep, batch_milp.propose)
        except batch_milp.SolverFailed:
            found, out["failed"] = None, out["failed"] + 1
        ours = batch_flow.evaluate(prep, found[0]).volume if found else 0
        out["cleared"] += found is not None
        floor = max(pair_floor(prep), batch_flow.evaluate(prep, prep.reference).volume)
        sampled = max(
            batch_flow.evaluate(
                prep, tuple(rng.randint(lo, hi) for lo, hi in zip(prep.lo, prep.hi, strict=True))
            ).volume
            for _ in range(draws)
        )
        out["beaten"] += sampled > ours
        out["missed"] += ours == 0 and max(floor, sampled) > 0
        out["below_floor"] += ours < floor
        if sampled > ours > 0:
            worst = max(worst, sampled / ours - 1)
    out["worst_shortfall"] = float(worst)
    out["seconds"] = time.perf_counter() - started
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| legs | orders | fills | clear (ms) | per order (µs) | search (ms, evaluations) | fills + rounding + check "
        "(ms) | bare solve (ms) | exact solve (ms) | written and committed (ms) | total (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tail = r.get("fills_s", 0) + r.get("round_s", 0) + r.get("check_s", 0)
        lines.append(
            f"| {r['legs']} | {r['orders']:,} | {r['fills']:,} | {r['clear_s'] * 1e3:,.0f} | {r['per_order_us']:,.0f} "
            f"| {r['search_s'] * 1e3:,.0f} ({r['evaluations']}) | {tail * 1e3:,.0f} | {r.get('bare_s', 0) * 1e3:.2f} "
            f"| {r.get('exact_s', 0) * 1e3:.2f} | {r['write_s'] * 1e3:,.0f} | {r['total_s'] * 1e3:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=0, help="also measure the search's miss rate on N books")
    parser.add_argument("--kind", choices=("bench", "wide", "both"), default="both", help="the books --samples draws")
    parser.add_argument("--sizes", help="legs x orders to time, e.g. 8x10000,32x1000 (instead of the default)")
    parser.add_argument("--no-timings", action="store_true", help="only the --samples measurement")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = (
        [(legs, n) for legs in (4, 8) for n in (100, 1_000)]
        if args.quick
        else [(legs, n) for legs in (4, 8, 32) for n in (100, 1_000, 10_000)]
    )
    if args.sizes:
        sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    if args.no_timings:
        sizes = []
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for legs, n in sizes:
            rows.append(measure(legs, n, 1 if legs * n > 100_000 else args.repeats, Path(tmp)))
            print(f"  {legs} legs, {n:,} orders: {rows[-1]['total_s'] * 1e3:,.0f} ms", file=sys.stderr)
    print(table(rows))
    goal = next((r for r in rows if (r["legs"], r["orders"]) == GOAL[:2]), None)
    if goal is not None:
        met = "met" if goal["total_s"] < GOAL[2] else "NOT met"
        print(
            f"\nGoal: {GOAL[1]:,} orders over {GOAL[0]} legs cleared, written and committed in under {GOAL[2]:g} s: "
            f"{goal['total_s']:.3f} s, {met}."
        )
    report = {"rows": rows, "samples": []}
    for kind in ("bench", "wide") if args.kind == "both" else (args.kind,):
        if args.samples:
            s = samples(args.samples, kind)
            report["samples"].append(s)
            print(
                f"\nSampled ({kind} books): in {s['books']} books (cleared {s['cleared']}), one of 60 random price "
                f"vectors beat the search in {s['beaten']} (by at most {s['worst_shortfall']:.2%}); it traded "
                f"nothing while a vector or a pair would in {s['missed']}; below the best pair or the reference in "
                f"{s['below_floor']}; solver failures {s['failed']}; {s['seconds']:.0f} s."
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
