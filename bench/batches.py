"""Batch auctions' cut through the service: `services.clear_batch` on a session holding N resting orders over
L legs (on the bench's SQLite file, synchronous=FULL): the book read under the session's lock, the oracle's
prices at the cut, the clearing, its exact check, the BatchCleared event (canonical JSON, hash-chained), the
projection's statements (orders, fills, holdings, reservations), the invariants and the commit.

Beside it, the limit for the same work on the same instance: the clearing alone, in memory
(`markets.domain.batch.clear` on the book the service reads), plus the same rows written by plain sqlite3 in
one transaction (the event, one update per order of the book, one row per fill, one update per holding that
moved) on a copy of the same database with the same PRAGMAs. The ratio says what the service adds to the
algorithm and the disk.

Each session is loaded in bulk (`bench.loader`, not timed): its participants, a pro rata allocation and N
OrderPlaced events, seeded as `bench/clearing.py`'s books (reference prices from 1 to 10,000, limits within
10% of the reference rate, 1 to 1,000 units each). The goal (issue #30): 10,000 orders over 8 legs clear,
written and committed, in under 1 s, and the cost per order stays flat from 1,000 to 10,000 orders.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.common import Figure, Stopwatch, copy_db, fast_setup, make_users
from bench.eventlog import INSERT_SQL, LEG_NAMES, dumps

GOAL = (8, 10_000, 1.0)  # legs, orders, seconds: cleared, written and committed
HOLDERS = 50  # participants holding legs (and placing orders); max_orders allows 10,000 among them
UNITS_EACH = 10**6  # units of every leg each holder starts with: far more than its orders give
T0 = dt.datetime(2031, 6, 2, 9, 0, tzinfo=dt.UTC)
CUT = T0 + dt.timedelta(minutes=30)
SECTION = "Batch auction cut"


def leg_names(legs: int) -> list[str]:
    return LEG_NAMES[:legs] if legs <= len(LEG_NAMES) else [f"L{k:02d}" for k in range(legs)]


def instance(seed: int, legs: int, orders: int) -> tuple[list[int], list[tuple[int, int, int, int, int]]]:
    """Reference prices and orders (owner index, give, get, quantity, limit), as bench/clearing.py draws them."""
    rng = random.Random(seed)
    reference = [rng.randint(10**6, 10**10) for _ in range(legs)]
    rows = []
    for _ in range(orders):
        give = rng.randrange(legs)
        get = rng.randrange(legs - 1)
        get += get >= give
        rate = Fraction(reference[give], reference[get]) * Fraction(rng.randint(900, 1100), 1000)
        rows.append((rng.randrange(HOLDERS), give, get, rng.randint(10**6, 10**9), max(1, int(rate * 10**8))))
    return reference, rows


def log_rows(session_id: str, legs: list[str], orders, users: dict[str, Any], first_seq: int, first_order: int):
    """The session's events (created, joined, allocated, opened, N orders placed) as hash-chained ledger rows."""
    from ledger.store import GENESIS, compute_hash, format_at
    from markets import domain

    organiser, holders = users["org"], [users[f"holder{i:03d}"] for i in range(HOLDERS)]
    q = [UNITS_EACH * HOLDERS * domain.QTY_SCALE] * len(legs)
    created = {
        "session_id": session_id,
        "title": f"Bench cut {session_id}",
        "legs": legs,
        "q": q,
        "t1": None,
        "t2": None,
        "start_mode": "immediate",
        "end_mode": "manual",
        "allocation_mode": "pro_rata",
        "fixing_rule": {"rule": "last"},
        "created_by_id": organiser.pk,
        "scales": {"qty_dp": domain.QTY_DP, "rate_dp": domain.RATE_DP, "price_dp": domain.PRICE_DP},
        "mechanism": "batch",
        "batch": {"seconds": 3600, "band": "0.10", "max_orders": 1000, "min_order": 10_000},
    }
    events = [("SessionCreated", created)]
    events += [("ParticipantJoined", {"user_id": organiser.pk, "username": "org", "role": "organiser"})]
    events += [("ParticipantJoined", {"user_id": u.pk, "username": u.username, "role": "trader"}) for u in holders]
    allocation = domain.pro_rata(q, sorted(u.username for u in holders))
    by_id = {str(u.pk): allocation[u.username] for u in holders}
    events += [("InitialAllocationAssigned", {"mode": "pro_rata", "holdings_by_id": by_id}), ("SessionOpened", {})]
    for i, (owner, give, get, quantity, limit) in enumerate(orders):
        placed = {
            "order_id": first_order + i,
            "user_id": holders[owner].pk,
            "give_leg": legs[give],
            "get_leg": legs[get],
            "quantity": quantity,
            "limit_rate": limit,
            "batches": 1,  # the default: one batch; what does not fill expires at the cut
        }
        events.append(("OrderPlaced", placed))
    stream, prev, rows = domain.stream_name(session_id), GENESIS, []
    for version, (type_, payload) in enumerate(events, start=1):
        at = T0 + dt.timedelta(milliseconds=version)
        text = dumps(payload)
        digest = compute_hash(prev, stream, version, type_, format_at(at), text)
        rows.append((first_seq + version - 1, stream, version, type_, text, str(at.replace(tzinfo=None)), prev, digest))
        prev = digest
    return rows


def load(session_id: str, legs: int, seed: int, n: int) -> dict[str, Any]:
    """A batch session holding `n` resting orders and the oracle's prices at the cut (not timed)."""
    from bench import loader
    from oracle.models import Tick

    users = make_users(["org", *(f"holder{i:03d}" for i in range(HOLDERS))], organisers=("org",))
    names = leg_names(legs)
    reference, orders = instance(seed, legs, n)
    first_seq, first_ids = loader.next_ids()
    rows = log_rows(session_id, names, orders, users, first_seq, first_ids[3])
    from django.db import connection, transaction

    # One transaction without fsync (the bench); inside a test, the test's own transaction.
    with transaction.atomic() if connection.in_atomic_block else fast_setup():
        loader.load(rows)
        Tick.objects.bulk_create(
            Tick(session_id=session_id, symbol=leg, at=CUT - dt.timedelta(seconds=1), price=price, source="bench")
            for leg, price in zip(names, reference, strict=True)
        )
    return {"session_id": session_id, "organiser": users["org"], "legs": names, "reference": reference}


def service_cut(market: dict[str, Any]) -> tuple[float, Any]:
    """Seconds for `services.clear_batch` by the organiser at the cut (the clock frozen there)."""
    from ledger import clock
    from markets import services

    with clock.frozen(CUT), Stopwatch() as watch:
        cut = services.clear_batch(market["organiser"], market["session_id"])
    return watch.seconds, cut


def domain_book(market: dict[str, Any]):
    """The book the service reads at the cut, built the same way (`services.batches._cut`)."""
    from markets.domain import batch
    from markets.models import Order

    index = {leg: k for k, leg in enumerate(market["legs"])}
    rows = (
        Order.objects.filter(session_id=market["session_id"], status="resting")
        .order_by("id")
        .values_list("id", "participant__user_id", "give_leg", "get_leg", "rest", "limit_rate")
    )
    orders = [batch.Order(i, u, index[g], index[t], rest, limit) for i, u, g, t, rest, limit in rows]
    return batch.make_book(market["legs"], market["reference"], Fraction(1, 10), orders)


def raw_db(ctx, market: dict[str, Any], path: Path) -> Path:
    """A copy of the migrated schema holding the session's orders, holdings and the head of its stream: the
    rows the raw write touches (not timed)."""
    from django.db import connection

    copy_db(ctx.schema, path)
    tables = {
        "markets_order": ('WHERE "session_id" = %s', [market["session_id"]]),
        "markets_holding": ('WHERE "session_id" = %s', [market["session_id"]]),
        "ledger_event": ('WHERE "stream" = %s ORDER BY "version" DESC LIMIT 1', [f"session-{market['session_id']}"]),
    }
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("BEGIN")
    for table, (where, params) in tables.items():
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT * FROM "{table}" {where}', params)
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        names = ", ".join(f'"{c}"' for c in columns)
        raw.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)
    raw.execute("COMMIT")
    raw.close()
    return path


def raw_write(path: Path, market: dict[str, Any], book, result) -> float:
    """The cut's rows by plain sqlite3, one transaction, synchronous=FULL: the event (canonical JSON hashed
    with sha256), one update per order of the book, one insert per fill, one update per holding moved."""
    from ledger.store import compute_hash, format_at
    from markets.domain import batch
    from markets.domain import orders as rules
    from markets.models import Participant

    participant = dict(Participant.objects.filter(session_id=market["session_id"]).values_list("user_id", "id"))
    fills = result.fills if isinstance(result, batch.Clearing) else ()
    filled = {f.order: f for f in fills}
    moves: dict[tuple[int, int], list[int]] = {}

    def move(owner: int, leg: int, qty: int, reserved: int) -> None:
        row = moves.setdefault((participant[owner], leg), [0, 0])
        row[0] += qty
        row[1] += reserved

    at = str(CUT.replace(tzinfo=None))
    order_rows = []
    for o in book.orders:
        f = filled.get(o.id)
        if f is not None:
            move(o.owner, o.give, -f.given, -f.given)
            move(o.owner, o.get, f.received, 0)
        rest = f.rest if f is not None else o.quantity
        status, left = rules.after_cut(rest, 1)  # the bench's orders live one batch
        if status == "expired":
            move(o.owner, o.give, 0, -rest)
        order_rows.append((rest, status, left, at, o.id))
    payload = {"orders": [o.id for o in book.orders], "result": batch.result_to_dict(result)}
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    stream = f"session-{market['session_id']}"
    with Stopwatch() as watch:
        conn.execute("BEGIN IMMEDIATE")
        version, prev = conn.execute(
            "SELECT version, hash FROM ledger_event WHERE stream = ? ORDER BY version DESC LIMIT 1", (stream,)
        ).fetchone()
        (seq,) = conn.execute("SELECT MAX(seq) + 1 FROM ledger_event").fetchone()
        text = dumps(payload)
        digest = compute_hash(prev, stream, version + 1, "BatchCleared", format_at(CUT), text)
        conn.execute(INSERT_SQL, (seq, stream, version + 1, "BatchCleared", text, at, prev, digest))
        conn.executemany(
            'UPDATE "markets_order" SET "rest" = ?, "status" = ?, "batches_left" = ?, "closed_at" = ? WHERE "id" = ?',
            order_rows,
        )
        conn.executemany(
            'INSERT INTO "markets_fill" ("batch_id", "order_id", "participant_id", "give_leg", "get_leg", "given", '
            '"received", "rest") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            [
                (1, f.order, participant[f.owner], book.legs[f.give], book.legs[f.get], f.given, f.received, f.rest)
                for f in fills
            ],
        )
        conn.executemany(
            'UPDATE "markets_holding" SET "qty" = "qty" + ?, "reserved" = "reserved" + ? '
            'WHERE "participant_id" = ? AND "leg_index" = ?',
            [(q, r, p, k) for (p, k), (q, r) in sorted(moves.items())],
        )
        conn.execute("COMMIT")
    conn.close()
    return watch.seconds


def measure(ctx, legs: int, n: int, repeats: int) -> dict[str, Any]:
    """One size: the service's cut (best of `repeats` sessions holding the same book), the clearing alone
    (best of `repeats`, after a warm-up run) and the raw write of the same rows."""
    from markets.domain import batch
    from markets.models import Batch

    seed = legs * 100_003 + n
    markets = [load(f"cut{legs}x{n}-{r}", legs, seed, n) for r in range(repeats)]
    book = domain_book(markets[0])
    result = batch.clear(book)  # warm: imports, the first HiGHS instance
    clear_s = min(_timed(lambda: batch.clear(book)) for _ in range(repeats))
    copy = raw_db(ctx, markets[0], ctx.workdir / f"cut-{legs}-{n}.sqlite3")
    write_s = raw_write(copy, markets[0], book, result)
    copy.unlink()
    fills = len(result.fills) if isinstance(result, batch.Clearing) else 0
    service_s = float("inf")
    for market in markets:
        seconds, cut = service_cut(market)
        service_s = min(service_s, seconds)
        recorded = Batch.objects.get(id=cut.id)
        if (recorded.outcome, recorded.filled) != ("cleared" if fills else "none", fills):
            raise RuntimeError(f"the service's cut differs from the clearing of the same book: {recorded.reason}")
    return {
        "legs": legs,
        "orders": n,
        "fills": fills,
        "service_s": service_s,
        "clear_s": clear_s,
        "write_s": write_s,
        "limit_s": clear_s + write_s,
        "per_order_us": service_s / n * 1e6,
    }


def _timed(fn) -> float:
    with Stopwatch() as watch:
        fn()
    return watch.seconds


def run(ctx) -> list[Figure]:
    figures = []
    rows = []
    for legs, n in ctx.sizes["clearing"]:
        ctx.log(f"batch cut: {n:,} resting orders over {legs} legs through services.clear_batch")
        row = measure(ctx, legs, n, 1 if ctx.quick or n >= 10_000 else 2)
        rows.append(row)
        goal = (legs, n) == GOAL[:2]
        figures.append(
            Figure(
                key=f"clearing.{legs}.{n}",
                section=SECTION,
                name=f"clear_batch over {legs} legs, written and committed",
                size=f"{n:,} resting orders, {legs} legs, {row['fills']:,} fills",
                value=row["service_s"] * 1000,
                unit="ms",
                limit=row["limit_s"] * 1000,
                limit_name=(
                    f"the clearing alone in memory ({row['clear_s'] * 1000:,.0f} ms) + the same rows by raw sqlite3 "
                    f"({row['write_s'] * 1000:,.0f} ms)"
                ),
                higher_is_better=False,
                goal=f"under {GOAL[2] * 1000:,.0f} ms" if goal else "",
                met=row["service_s"] < GOAL[2] if goal else None,
                detail=row,
                scale=f"{n:,} orders",
                work=n,
            )
        )
    ctx.notes["clearing"] = {"rows": rows, "flat": flatness(rows)}
    return figures


def flatness(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per leg count, the service's cost per order at 10,000 orders over its cost at 1,000 (1.0: flat)."""
    out = []
    by = {(r["legs"], r["orders"]): r for r in rows}
    for legs in sorted({r["legs"] for r in rows}):
        if (legs, 1_000) in by and (legs, 10_000) in by:
            ratio = by[(legs, 10_000)]["per_order_us"] / by[(legs, 1_000)]["per_order_us"]
            out.append({"legs": legs, "per_order_1000_us": by[(legs, 1_000)]["per_order_us"], "factor": ratio})
    return out


def markdown(notes: dict[str, Any]) -> str:
    """The cut's table and whether its cost per order stays flat from 1,000 to 10,000 orders."""
    lines = [
        "## Batch auction cut",
        "",
        "| legs | orders | fills | clear_batch, written and committed | the clearing alone | raw write of the same rows "
        "| per order |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in notes["rows"]:
        lines.append(
            f"| {r['legs']} | {r['orders']:,} | {r['fills']:,} | {r['service_s'] * 1e3:,.0f} ms "
            f"| {r['clear_s'] * 1e3:,.0f} ms | {r['write_s'] * 1e3:,.0f} ms | {r['per_order_us']:,.0f} µs |"
        )
    lines.append("")
    for f in notes["flat"]:
        verdict = "flat or falling" if f["factor"] <= 1.2 else "**rising**"
        lines.append(
            f"- {f['legs']} legs: the cost per order at 10,000 orders is {f['factor']:.2f}x its cost at 1,000 "
            f"({verdict})."
        )
    return "\n".join([*lines, ""])
