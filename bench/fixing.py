"""What a fixing over a long window costs: `oracle.fixing.take_fixing` over N ticks of one leg stored in the
SQLite file (VWAP over the window, and a fallback ladder whose VWAP tier is refused for volume and whose
TWAP tier answers), beside a bare pass over the same rows: read with sqlite3 and reduced with numpy
(float64, so not exact; ours is exact integers). The goal: within 3x of the bare pass (ratio >= 1/3).

The ticks (untimed) are a seeded walk, one every 80 ms, each with a volume, written in bulk with
executemany; both sides read the same rows from the same file, alternating, best of ROUNDS each.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import time
from typing import Any

from bench.common import Figure

ROUNDS = 3
GOAL = 1 / 3
SESSION, LEG = "bench-fixing", "X"
T2 = dt.datetime(2031, 1, 6, 21, 0, tzinfo=dt.UTC)
STEP_US = 80_000  # one tick every 80 ms: a million fit in a day's window
WINDOW = 86_400
RULES = {
    "vwap": {"rule": "vwap", "window": WINDOW},
    "ladder": {
        "rule": "fallback",
        "tiers": [
            {"rule": "vwap", "window": WINDOW, "min_volume": "1000000000"},  # refused: the window traded less
            {"rule": "twap", "window": WINDOW},
            {"rule": "last"},
        ],
    },
}


def load(n: int, seed: int = 7) -> None:
    """N ticks of one leg ending at t2, as the oracle stores them, through Django's connection."""
    from django.db import connection, transaction

    from oracle.models import Tick

    Tick.objects.filter(session_id=SESSION).delete()
    rng = random.Random(seed)
    price = 100_000_000
    rows = []
    first = T2 - dt.timedelta(microseconds=STEP_US * (n - 1))
    for k in range(n):
        price = max(1_000_000, price + rng.randrange(-20_000, 20_001))
        at = first + dt.timedelta(microseconds=STEP_US * k)
        rows.append((SESSION, LEG, stored(at), price, "a", rng.randrange(1, 500) * 10_000))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO oracle_tick (session_id, symbol, at, price, source, volume) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def window():
    """The rules' window, for a check made apart from `take_fixing`."""
    from oracle.fixing_methods import Window

    return Window(T2 - dt.timedelta(seconds=WINDOW), T2)


def stored(at: dt.datetime) -> str:
    """An instant as Django writes it into SQLite (naive UTC, no fraction when it is 0): compared as text."""
    return str(at.astimezone(dt.UTC).replace(tzinfo=None))


def ours(name: str) -> tuple[int, int]:
    """The settlement's fixing of the leg: (value, ticks read)."""
    from oracle.fixing import take_fixing

    made = take_fixing(SESSION, [LEG], T2, RULES[name])
    return made.prices[LEG], len(made.legs[LEG]["read"])


def bare(db_path: str, name: str) -> int:
    """The same value by the bare pass: sqlite3 reads (at, price, volume) of the window, numpy reduces."""
    import numpy as np

    start, end = stored(T2 - dt.timedelta(seconds=WINDOW)), stored(T2)
    db = sqlite3.connect(db_path)
    try:
        query = "SELECT at, price, volume FROM oracle_tick WHERE session_id = ? AND symbol = ? AND at > ? AND at <= ?"
        rows = db.execute(query, (SESSION, LEG, start, end)).fetchall()
    finally:
        db.close()
    at, price, volume = zip(*rows, strict=True)
    p = np.array(price, dtype=np.float64)
    v = np.array(volume, dtype=np.float64)
    if name == "vwap":
        return int(np.floor(np.dot(p, v) / v.sum()))
    # The ladder: the VWAP tier's volume test, then a TWAP over the window (the ticks inside it; the one
    # in force at its start is before every row here, so none).
    assert v.sum() < 1_000_000_000 * 10**6
    t = np.array(at, dtype="datetime64[us]").astype(np.int64)
    spans = np.diff(np.append(t, np.datetime64(T2.replace(tzinfo=None), "us").astype(np.int64)))
    return int(np.floor(np.dot(p, spans) / spans.sum()))


def best(fn, *args) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out


def run(ctx) -> list:
    from django.db import connection

    n = ctx.sizes.get("fixing_ticks", 1_000_000)
    started = time.perf_counter()
    load(n)
    ctx.log(f"fixing: {n:,} ticks loaded in {time.perf_counter() - started:.1f}s")
    connection.ensure_connection()
    db_path = connection.settings_dict["NAME"]
    figures = []
    for name in RULES:
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for r in range(ROUNDS):
            for side in ("bare", "ours") if r % 2 else ("ours", "bare"):
                seconds, out = best(ours, name) if side == "ours" else best(bare, str(db_path), name)
                times[side].append(seconds)
                if side == "ours":
                    value, read = out
                else:
                    approx = out
        ours_s, bare_s = min(times["ours"]), min(times["bare"])
        ctx.log(f"fixing {name}: take_fixing {ours_s:.2f}s, sqlite3 + numpy {bare_s:.2f}s ({ours_s / bare_s:.1f}x)")
        figures.append(
            Figure(
                key=f"fixing.{name}",
                section="Fixing",
                name=f"take_fixing ({'VWAP' if name == 'vwap' else 'ladder: VWAP refused, TWAP answers'})",
                size=f"{n:,} ticks in the window",
                scale=f"{n:,} ticks",
                value=n / ours_s,
                unit="ticks/s",
                limit=n / bare_s,
                limit_name="the same rows read with sqlite3 and reduced with numpy (float64)",
                goal="within 3x of the bare pass",
                met=bare_s / ours_s >= GOAL,
                detail={
                    "ticks": n,
                    "read": read,
                    "seconds_ours": ours_s,
                    "seconds_bare": bare_s,
                    "times_ours": times["ours"],
                    "times_bare": times["bare"],
                    "value": value,
                    "bare_value": approx,  # float64: may differ from the exact value in the last unit
                },
            )
        )
    ctx.notes["fixing"] = [f.detail | {"rule": f.key.split(".")[1]} for f in figures]
    return figures


def markdown(notes: list[dict[str, Any]]) -> str:
    """The page's paragraph on the fixing over a long window (from the run's notes)."""
    if not notes:
        return ""
    rows = [
        f"| {n['rule']} | {n['ticks']:,} | {n['seconds_ours']:.2f} s | {n['seconds_bare']:.2f} s "
        f"| {n['seconds_ours'] / n['seconds_bare']:.1f}x |"
        for n in notes
    ]
    return "\n".join(
        [
            "## What a fixing over a long window costs",
            "",
            "`take_fixing` (the settlement's: the ticks read through the ORM, the exact rule, the per-leg record)",
            "beside sqlite3 + numpy over the same rows (float64, no record). Goal: within 3x.",
            "",
            "| rule | ticks | take_fixing | sqlite3 + numpy | times the bare pass |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
