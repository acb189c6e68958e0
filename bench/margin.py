"""What bounded shorting costs the trade path: `services.accept_quote` in a session that allows shorting,
where every trader is short of a leg (so each accept judges the taker's worst case over the box at the
oracle's latest prices, besides the short limits and the pool's gross cap), beside the same accepts in the
same kind of session without shorting, in one run.

Both sessions are loaded in bulk from generated logs of the same size (`bench.trade.load_session`; the
shorting one's log holds a short squeeze), the oracle ticks every leg of both (prices that make each leg
of the pool worth the same), and, untimed, each trader of the shorting session sells one leg short
(a quarter of a percent of the pool's q_k). Only the accepts are timed, in alternating rounds so that a
change in the machine's speed hits both alike. The goal: margin costs at most 10% (on/off >= 0.9).
"""

from __future__ import annotations

import random
from typing import Any

from bench.common import Figure
from bench.trade import count_statements, load_session, prepare_accepts

ROUNDS = 8
MODES = ("FULL", "NORMAL")
GOAL = 0.9  # the shorting session's rate over the other's: margin costs at most 10%


def oracle(market) -> list[int]:
    """A tick for every leg of the session: price_k = 10**18 / q_k base units (each leg of the pool worth
    the same). Returns the prices in leg order."""
    from ledger import clock
    from markets.models import Session
    from oracle.models import Tick

    session = Session.objects.get(id=market.session_id)
    prices = [max(1, 10**18 // q) for q in session.q]
    now = clock.now()
    Tick.objects.bulk_create(
        Tick(session_id=session.id, symbol=leg, at=now, price=p, source="bench")
        for leg, p in zip(session.legs, prices, strict=True)
    )
    return prices


def go_short(market, prices: list[int], rng: random.Random) -> list[Any]:
    """Each trader sells one leg short (all it holds of it and q_k/400 more) to the maker holding the most
    of another, at a tenth of the oracle's rate (plenty of margin is left). Returns the traders now short
    (not the squeeze's victim: liquidated with nothing left, it cannot)."""
    from markets import domain, projections, services
    from markets.domain import DomainError
    from markets.models import Session

    session = Session.objects.get(id=market.session_id)
    legs, q = list(session.legs), list(session.q)
    x = projections.holdings_by_user(session.id)
    shorts = []
    for trader in market.traders:
        k, j = rng.sample(range(len(legs)), 2)
        maker = max(market.makers, key=lambda m: (x[m.pk][j], -m.pk))
        give = x[trader.pk][k] + q[k] // 400
        rate = prices[k] * domain.RATE_SCALE // prices[j] // 10
        try:
            rfq = services.request_rfq(trader, session.id, legs[k], legs[j], domain.qty_str(give))
            quote = services.provide_quote(maker, rfq.id, domain.rate_str(rate), 86_400)
            services.accept_quote(trader, quote.id)
        except DomainError:
            continue
        x = projections.holdings_by_user(session.id)
        shorts.append(trader)
    return shorts


def time_accepts(pending: list[tuple[Any, int]], mode: str) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) for accepting these quotes, each its own transaction. The
    CPU time is what margin adds without the disk's and the other processes' noise."""
    import time

    from bench.common import set_synchronous
    from markets import services

    set_synchronous(mode)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for taker, quote_id in pending:
            services.accept_quote(taker, quote_id)
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        set_synchronous("FULL")


def run(ctx) -> list[Figure]:
    from bench.common import fast_setup

    sizes = ctx.sizes
    prior, n = sizes["margin_prior"], sizes["margin_accepts"]
    ctx.log(f"margin: loading two sessions with {prior:,} trades, one allowing shorts")
    off, _ = load_session(f"marginoff{prior}-", prior, seed=31)
    on, _ = load_session(f"marginon{prior}-", prior, seed=31, shorting=True)
    with fast_setup():
        oracle(off)
        prices = oracle(on)
        short = go_short(on, prices, random.Random(5))
    ctx.log(f"margin: {len(short)} of {len(on.traders)} traders short; {n} accepts on each side per mode")
    on.traders = short  # the takers of the timed accepts: every one short
    shorts = len(short)
    statements = {"off": count_statements(off), "on": count_statements(on)}
    figures = []
    for mode in MODES:
        pending = {"off": prepare_accepts(off, n), "on": prepare_accepts(on, n)}
        seconds = {"off": 0.0, "on": 0.0}
        cpu = {"off": 0.0, "on": 0.0}
        for r in range(ROUNDS):
            order = ("on", "off") if r % 2 else ("off", "on")
            for side in order:
                wall, used = time_accepts(pending[side][r * n // ROUNDS : (r + 1) * n // ROUNDS], mode)
                seconds[side] += wall
                cpu[side] += used
        rate = {side: n / s for side, s in seconds.items()}
        figures.append(
            Figure(
                key=f"margin.trade.{mode.lower()}",
                section="Margin",
                name=f"accept_quote with shorting on (every taker short), synchronous={mode}",
                size=f"{prior:,} trades in session, {shorts} traders short",
                scale=f"{prior:,} trades",
                value=rate["on"],
                unit="trades/s",
                limit=rate["off"],
                limit_name=f"the same accepts with shorting off, synchronous={mode}",
                goal=f"margin costs <= {1 - GOAL:.0%}",
                met=rate["on"] / rate["off"] >= GOAL,
                detail={
                    "accepts": n,
                    "seconds_on": seconds["on"],
                    "seconds_off": seconds["off"],
                    "ms_per_accept_on": seconds["on"] / n * 1000,
                    "ms_per_accept_off": seconds["off"] / n * 1000,
                    "cost": 1 - rate["on"] / rate["off"],
                    "cpu_ms_per_accept_on": cpu["on"] / n * 1000,
                    "cpu_ms_per_accept_off": cpu["off"] / n * 1000,
                    "cpu_cost": cpu["on"] / cpu["off"] - 1,
                    "statements_per_accept": statements,
                    "traders_short": shorts,
                },
            )
        )
    ctx.notes["margin"] = [f.detail | {"mode": f.key.rsplit(".", 1)[1]} for f in figures]
    return figures


def markdown(notes: list[dict[str, Any]]) -> str:
    """The page's paragraph on what margin costs (from the run's notes)."""
    if not notes:
        return ""
    rows = [
        f"| {n['mode'].upper()} | {n['ms_per_accept_off']:.2f} ms | {n['ms_per_accept_on']:.2f} ms | {n['cost'] * 100:+.1f}% "
        f"| {n['cpu_ms_per_accept_off']:.2f} ms | {n['cpu_ms_per_accept_on']:.2f} ms | {n['cpu_cost'] * 100:+.1f}% "
        f"| {n['statements_per_accept']['off']} / {n['statements_per_accept']['on']} |"
        for n in notes
    ]
    return "\n".join(
        [
            "## What margin costs an accept",
            "",
            "One accept in a session without shorting, and in one that allows it with every taker short (the",
            "margin rule judges the taker's worst case over the box at the oracle's latest prices). Wall time, the",
            "figure's (margin costs 1 - rate on / rate off of the rate), and this process's CPU time",
            "(what margin adds, without the disk's or the other processes' noise on a shared machine):",
            "",
            "| synchronous | wall, off | wall, on | margin costs | CPU, off | CPU, on | CPU added | SQL statements (off / on) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
