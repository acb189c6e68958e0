"""Trade path: accepted trades per second through `services.accept_quote` on SQLite WAL, against a raw
sqlite3 loop doing the same transaction shape on a file with the same PRAGMAs.

Sessions of 50 participants and 8 legs already holding N trades (loaded in bulk, see bench/loader.py) take
`accepts` more through the services, each its own transaction, as a request would: only the accepts are
timed (their RFQs and quotes are made beforehand). The raw loop, per trade: BEGIN IMMEDIATE; read the
stream's head and the two inventories; 4 holding updates; 1 TradeExecuted insert hashed with sha256 over
canonical JSON; COMMIT; on a copy of the project's schema holding as many events as the bench database.
Both run with synchronous=FULL (what the project uses) and NORMAL (to show what FULL costs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, Market, Stopwatch, copy_db, fast_setup, make_users, set_synchronous
from bench.eventlog import GeneratedLog, usernames

PARTICIPANTS = 50
LEGS = 8
MODES = ("FULL", "NORMAL")
ROUNDS = 4
EVENTS_PER_TRADE = 4.19  # RFQs (some cancelled), their quotes and the trade: measured on the generator


def bench_users(participants: int = PARTICIPANTS) -> dict[str, Any]:
    organiser, traders, makers = usernames(participants)
    return make_users([organiser, *traders, *makers], organisers=(organiser,))


def load_session(
    prefix: str,
    trades: int,
    *,
    participants: int = PARTICIPANTS,
    legs: int = LEGS,
    seed: int = 1,
    mechanism: str = "rfq",
    shorting: bool = False,
):
    """A session already holding about `trades` trades (and their RFQs and quotes), loaded in bulk. It trades
    by RFQ only unless `mechanism` says "both" (then batch cycles too, and fewer trades for the same log).
    With `shorting` it allows bounded shorting (and its log holds a short squeeze, `bench.eventlog_short`)."""
    from bench import loader

    users = bench_users(participants)
    first_seq, first_ids = loader.next_ids()
    log = GeneratedLog(
        n_events=int(trades * EVENTS_PER_TRADE) + participants + 4,
        sessions=1,
        participants=participants,
        legs=legs,
        seed=seed,
        settle=False,
        session_prefix=prefix,
        first_seq=first_seq,
        first_ids=first_ids,
        mechanism=mechanism,
        squeezes=1 if shorting else 0,
        user_ids={name: user.pk for name, user in users.items()},
    )
    with fast_setup():
        loader.load(log.rows())
    from django.db import connection

    if connection.vendor == "postgresql":
        # A bulk load leaves PostgreSQL's planner without statistics until autovacuum next looks: the runs
        # after it then differed by 2x (the HTTP accept 40 or 100 req/s) with the order they ran in.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    from markets import domain

    session_id = domain.session_of_stream(log.streams[0])
    organiser, traders, makers = usernames(participants)
    market = Market(
        session_id,
        _legs(session_id),
        users[organiser],
        [users[n] for n in traders],
        [users[n] for n in makers],
        rng=random.Random(seed),
    )
    return market, log


def _legs(session_id: str) -> list[str]:
    from markets.models import Session

    return list(Session.objects.get(id=session_id).legs)


def prepare_accepts(market: Market, n: int) -> list[tuple[Any, int]]:
    """`n` (taker, live quote id) pairs, made in bulk beforehand (not timed)."""
    with fast_setup():
        made = [market.rfq_and_quote() for _ in range(n)]
    return [(rfq.taker.user, quote.id) for rfq, quote in made]


def time_accepts(pending: list[tuple[Any, int]], mode: str) -> float:
    """Seconds for accepting these quotes, each its own transaction, with PRAGMA synchronous=`mode`."""
    from markets import services

    set_synchronous(mode)
    try:
        with Stopwatch() as watch:
            for taker, quote_id in pending:
                services.accept_quote(taker, quote_id)
    finally:
        set_synchronous("FULL")
    return watch.seconds


# ---------------------------------------------------------------- the raw loop


class RawLedger:
    """The same transaction shape on plain sqlite3: the machine's limit for one trade's writes."""

    STREAM = "session-raw"

    def __init__(self, schema: Path, path: Path, *, holders: int = PARTICIPANTS - 1, legs: int = LEGS) -> None:
        copy_db(schema, path)
        self.path = path
        self.holders, self.legs = holders, legs
        self.rng = random.Random(3)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE raw_holding (id INTEGER PRIMARY KEY, participant INTEGER NOT NULL, "
            "leg_index INTEGER NOT NULL, qty INTEGER NOT NULL, UNIQUE (participant, leg_index))"
        )
        conn.executemany(
            "INSERT INTO raw_holding (participant, leg_index, qty) VALUES (?, ?, ?)",
            [(i, k, 10**15) for i in range(holders) for k in range(legs)],
        )
        conn.close()
        self.events = 0

    def grow_to(self, events: int) -> None:
        """Add filler events (another stream) until the table holds `events` rows, like the bench database."""
        missing = events - self.events
        if missing <= 0:
            return
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        start = conn.execute("SELECT COALESCE(MAX(version), 0) FROM ledger_event WHERE stream = 'filler'").fetchone()[0]
        payload = json.dumps({"filler": "x" * 200})
        conn.executemany(
            "INSERT INTO ledger_event (stream, version, type, payload, at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ("filler", start + i, "Filler", payload, "2026-01-01 00:00:00.000000", "0" * 64, f"{start + i:064x}")
                for i in range(1, missing + 1)
            ),
        )
        conn.execute("COMMIT")
        conn.close()
        self.events = events

    def run(self, n: int, mode: str) -> float:
        """Seconds for `n` trades, each BEGIN IMMEDIATE ... COMMIT, with synchronous=`mode`."""
        from ledger.store import GENESIS, compute_hash, format_at

        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={mode}")
        conn.execute("PRAGMA foreign_keys=ON")
        rng, holders, legs = self.rng, self.holders, self.legs
        head_sql = "SELECT version, hash FROM ledger_event WHERE stream = ? ORDER BY version DESC LIMIT 1"
        held_sql = "SELECT participant, leg_index, qty FROM raw_holding WHERE participant IN (?, ?)"
        update_sql = "UPDATE raw_holding SET qty = qty + ? WHERE participant = ? AND leg_index = ?"
        insert_sql = "INSERT INTO ledger_event (stream, version, type, payload, at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
        plans = []
        for _ in range(n):
            taker, maker = rng.sample(range(holders), 2)
            give, get = rng.sample(range(legs), 2)
            plans.append((taker, maker, give, get, rng.randrange(1, 5) * 1_000_000))
        stream = self.STREAM
        with Stopwatch() as watch:
            for taker, maker, give, get, qty in plans:
                conn.execute("BEGIN IMMEDIATE")
                head = conn.execute(head_sql, (stream,)).fetchone()
                version, prev = head if head else (0, GENESIS)
                held = {(p, k): q for p, k, q in conn.execute(held_sql, (taker, maker))}
                if held[(taker, give)] < qty or held[(maker, get)] < qty:
                    raise RuntimeError("raw loop ran out of inventory")
                conn.execute(update_sql, (-qty, taker, give))
                conn.execute(update_sql, (qty, taker, get))
                conn.execute(update_sql, (qty, maker, give))
                conn.execute(update_sql, (-qty, maker, get))
                taker_deltas = [0] * legs
                maker_deltas = [0] * legs
                taker_deltas[give], taker_deltas[get] = -qty, qty
                maker_deltas[give], maker_deltas[get] = qty, -qty
                payload = json.dumps(
                    {
                        "trade_id": version + 1,
                        "taker": f"p{taker}",
                        "maker": f"p{maker}",
                        "give_qty": qty,
                        "get_qty": qty,
                        "rate": 100_000_000,
                        "taker_deltas": taker_deltas,
                        "maker_deltas": maker_deltas,
                    },
                    sort_keys=True,
                    separators=(",", ":"),
                )
                now = dt.datetime.now(dt.UTC)
                digest = compute_hash(prev, stream, version + 1, "TradeExecuted", format_at(now), payload)
                conn.execute(
                    insert_sql,
                    (stream, version + 1, "TradeExecuted", payload, str(now.replace(tzinfo=None)), prev, digest),
                )
                conn.execute("COMMIT")
        conn.close()
        self.events += n
        return watch.seconds


def raw_hash_check() -> None:
    """The raw loop hashes exactly like the ledger (guards the comparison against drift)."""
    from ledger.store import compute_hash

    text = "a|b|1|T|2026-01-01T00:00:00.000000Z|{}"
    assert hashlib.sha256(text.encode()).hexdigest() == compute_hash(
        "a", "b", 1, "T", "2026-01-01T00:00:00.000000Z", "{}"
    )


def count_statements(market: Market) -> int:
    """SQL statements one accept sends (BEGIN and COMMIT included), counted on one extra, untimed accept.

    The raw loop sends 9: BEGIN IMMEDIATE, 2 selects, 4 updates, 1 insert, COMMIT."""
    from django.db import connection

    from markets import services

    (taker, quote_id), *_ = prepare_accepts(market, 1)
    statements = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        services.accept_quote(taker, quote_id)
    return len(statements) + 1  # BEGIN IMMEDIATE goes through the wrapper, the driver's COMMIT does not


def run(ctx) -> list[Figure]:
    from ledger.models import Event
    from markets.models import Trade

    raw_hash_check()
    sizes = ctx.sizes
    raw = RawLedger(ctx.schema, ctx.workdir / "raw_trades.sqlite3")
    figures: list[Figure] = []
    for step, prior in enumerate(sizes["trade_prior"]):
        ctx.log(f"trade path: loading a session with {prior:,} trades")
        market, log = load_session(f"trade{prior}-", prior, seed=10 + step)
        trades_before = log.counts.get("TradeExecuted", 0)
        ctx.markets[f"trade{prior}"] = market
        results: dict[str, dict[str, float]] = {}
        ctx.notes["statements_per_accept"] = count_statements(market)
        for mode in MODES:
            n, raw_n = sizes["accepts"], sizes["raw_trades"]
            trades_now = Trade.objects.filter(session_id=market.session_id).count()
            pending = prepare_accepts(market, n)
            events_now = Event.objects.count()
            raw.grow_to(events_now)
            ctx.log(f"trade path: {n} accepts through the services and {raw_n} raw trades, synchronous={mode}")
            # In alternating rounds, so a change in the disk's speed during the run hits both sides alike.
            seconds = raw_seconds = 0.0
            for r in range(ROUNDS):
                seconds += time_accepts(pending[r * n // ROUNDS : (r + 1) * n // ROUNDS], mode)
                raw_seconds += raw.run((r + 1) * raw_n // ROUNDS - r * raw_n // ROUNDS, mode)
            results[mode] = {"services": n / seconds, "raw": raw_n / raw_seconds}
            if mode == "FULL":
                ctx.notes["raw_trades_per_s"] = raw_n / raw_seconds  # the limit bench/scale.py sets beside its rate
            figures.append(
                Figure(
                    key=f"trade.services.{mode.lower()}.{step}",
                    section="Trade path",
                    name=f"accept_quote, synchronous={mode}",
                    size=f"{trades_now:,} trades in session, {events_now:,} events in log",
                    scale=f"{trades_now:,} trades",
                    value=n / seconds,
                    unit="trades/s",
                    limit=raw_n / raw_seconds,
                    limit_name=f"raw sqlite3 loop, same transaction shape, synchronous={mode}",
                    goal=">= 0.25 of raw" if mode == "FULL" else "",
                    met=(n / seconds) / (raw_n / raw_seconds) >= 0.25 if mode == "FULL" else None,
                    detail={
                        "accepts": n,
                        "seconds": seconds,
                        "raw_trades": raw_n,
                        "raw_seconds": raw_seconds,
                        "ms_per_accept": seconds / n * 1000,
                        "ms_per_raw_trade": raw_seconds / raw_n * 1000,
                        "prior_trades": trades_before,
                    },
                )
            )
        for who in ("services", "raw"):
            ctx.notes.setdefault("full_vs_normal", []).append(
                {
                    "prior_trades": trades_before,
                    "path": who,
                    "full_per_s": results["FULL"][who],
                    "normal_per_s": results["NORMAL"][who],
                    "full_cost": 1 - results["FULL"][who] / results["NORMAL"][who],
                }
            )
        time.sleep(0)
    return figures
