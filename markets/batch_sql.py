"""The hand-written statements of batch auctions' projection (a named SQL module, as `markets/sql.py`):
a cut of 10,000 orders moves holdings, reservations, orders and fills by a few statements run many times
(`executemany`), not by 30,000 ORM saves. Portable SQL: SQLite and PostgreSQL run the same text."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from markets.domain import orders as rules

_RESERVE = 'UPDATE "markets_holding" SET "reserved" = "reserved" + %s WHERE "participant_id" = %s AND "leg" = %s'
_MOVE = (
    'UPDATE "markets_holding" SET "qty" = "qty" + %s, "reserved" = "reserved" + %s '
    'WHERE "participant_id" = %s AND "leg_index" = %s'
)
_BOOK = (
    'SELECT "id", "participant_id", "give_leg", "get_leg", "rest", "batches_left" FROM "markets_order" '
    'WHERE "session_id" = %s AND "status" = %s'
)
_ORDER = 'UPDATE "markets_order" SET "rest" = %s, "status" = %s, "batches_left" = %s, "closed_at" = %s WHERE "id" = %s'
# What a cut does to most of its book, one statement per group of ids (the values are the same for all):
_FILLED = 'UPDATE "markets_order" SET "rest" = 0, "status" = %s, "closed_at" = %s WHERE "id" IN ({ids})'
_EXPIRED = 'UPDATE "markets_order" SET "status" = %s, "batches_left" = 0, "closed_at" = %s WHERE "id" IN ({ids})'
_OLDER = 'UPDATE "markets_order" SET "batches_left" = "batches_left" - 1 WHERE "id" IN ({ids})'
CHUNK = 500  # ids per statement, far below SQLite's and PostgreSQL's limits on parameters
_FILL = (
    'INSERT INTO "markets_fill" ("batch_id", "order_id", "participant_id", "give_leg", "get_leg", "given", '
    '"received", "rest") VALUES {rows}'
)
_FILL_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"
FILL_CHUNK = 100  # rows per INSERT (800 parameters)


def reserve(participant: int, leg: str, quantity: int) -> None:
    """An order placed: `quantity` of its give leg is reserved."""
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE, [quantity, participant, leg])


def release(session_id: str, rests: Iterable[tuple[int, str, int]]) -> None:
    """Orders leaving the book (cancelled, lapsed): what they still reserved, (participant, leg, rest)."""
    total: dict[tuple[int, str], int] = defaultdict(int)
    for participant, leg, rest in rests:
        total[(participant, leg)] += rest
    with connection.cursor() as cursor:
        cursor.executemany(_RESERVE, [(-rest, p, leg) for (p, leg), rest in sorted(total.items()) if rest])


def apply_cut(
    session_id: str,
    batch_id: int,
    legs: Sequence[str],
    book: Sequence[int],
    fills: Sequence[dict[str, Any]],
    at: dt.datetime,
) -> None:
    """A cut, on the read models: each fill gives from its owner's give leg (and from what it reserved) and
    receives into the get leg; every order of the book is one batch older (`rules.after_cut`: filled,
    expired, resting on); an expired order frees what it still reserved.

    A cut of 10,000 orders writes them by group, not one by one: the orders filled in full, those expiring
    unfilled and those resting on one batch older each take one statement per few hundred ids (their new
    values are the same); an order good till cancelled that did not trade is unchanged and not written;
    only an order partly filled is written on its own (its rest is its own)."""
    index = {leg: k for k, leg in enumerate(legs)}
    in_book = set(book)
    at = connection.ops.adapt_datetimefield_value(at)  # stored as the ORM stores it (SQLite: naive UTC text)
    with connection.cursor() as cursor:
        cursor.execute(_BOOK, [session_id, "resting"])
        orders = {row[0]: row for row in cursor.fetchall() if row[0] in in_book}
    missing = in_book - orders.keys()
    if missing:
        raise ValueError(f"orders {sorted(missing)[:5]} of the batch's book are not resting")
    moves: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])  # (participant, leg) -> [qty, reserved]
    filled: dict[int, dict[str, Any]] = {}
    fill_rows = []
    for f in fills:
        oid, participant, give, get, _, _ = orders[f["order"]]
        filled[oid] = f
        moves[(participant, index[give])][0] -= f["given"]
        moves[(participant, index[give])][1] -= f["given"]
        moves[(participant, index[get])][0] += f["received"]
        fill_rows.append((batch_id, oid, participant, give, get, f["given"], f["received"], f["rest"]))
    whole: list[int] = []  # filled in full
    expired: list[int] = []  # expired with what they had, untouched by a fill
    older: list[int] = []  # resting on, untouched, one batch fewer to live
    one_by_one = []  # touched by a fill, with a rest of their own
    for oid in sorted(orders):
        _, participant, give, _, rest, left = orders[oid]
        fill = filled.get(oid)
        rest = fill["rest"] if fill is not None else rest
        status, after = rules.after_cut(rest, left)
        if status == "expired":
            moves[(participant, index[give])][1] -= rest
        if status == "filled":
            whole.append(oid)
        elif fill is not None:
            one_by_one.append((rest, status, after, at if status != "resting" else None, oid))
        elif status == "expired":
            expired.append(oid)
        elif after != left:
            older.append(oid)
    with connection.cursor() as cursor:
        cursor.executemany(_MOVE, [(q, r, p, k) for (p, k), (q, r) in sorted(moves.items()) if q or r])
        _by_ids(cursor, _FILLED, whole, ["filled", at])
        _by_ids(cursor, _EXPIRED, expired, ["expired", at])
        _by_ids(cursor, _OLDER, older, [])
        cursor.executemany(_ORDER, one_by_one)
        for start in range(0, len(fill_rows), FILL_CHUNK):
            chunk = fill_rows[start : start + FILL_CHUNK]
            cursor.execute(
                _FILL.format(rows=", ".join([_FILL_ROW] * len(chunk))), [value for row in chunk for value in row]
            )


def _by_ids(cursor, statement: str, ids: list[int], params: list[Any]) -> None:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        cursor.execute(statement.format(ids=", ".join(["%s"] * len(chunk))), [*params, *chunk])


def reservation_breaches(session_id: str, caps: list[int] | None = None) -> list[tuple[int, str, int, int]]:
    """Holdings whose reservation is below zero or above what they hold (plus the leg's short limit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT "participant_id", "leg", "qty", "reserved", "leg_index" FROM "markets_holding" '
            'WHERE "session_id" = %s AND ("reserved" < 0 OR "reserved" > "qty")',
            [session_id],
        )
        rows = cursor.fetchall()
    return [row[:4] for row in rows if row[3] < 0 or row[3] > row[2] + (caps[row[4]] if caps else 0)]
