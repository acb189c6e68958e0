"""The batch auctions of a generated log (`bench.eventlog`): sealed limit orders and their cuts, planned the
way the services write them, so a log covers OrderPlaced, OrderCancelled and BatchCleared too.

A session that trades by batch auction (mechanism `both`: RFQ cycles go on beside) now and then runs a
batch cycle: a few holders place limit orders on one pair of legs around the session's reference rate
(within what they hold less what their resting orders reserve, at least `min_order`, at most `max_orders`
resting each), sometimes one is cancelled, and the organiser cuts the book now. The cut is cleared by
`markets.domain.batch` itself (the book of every resting order placed before it, at the session's reference
prices and band), so its fills are the ones the services would record. An order lives one batch, two, or
until cancelled; what rests of it carries over, and lapses with the rest of the book when trading closes.
Orders rest on one pair at a time (the pair moves once the book is empty): a two-leg book clears in a
millisecond, so a million-event log stays quick to generate.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from markets import domain
from markets.domain import batch
from markets.domain import orders as rules

SECONDS = 1
BAND = "0.10"
MAX_ORDERS = 20
MIN_ORDER = rules.DEFAULT_MIN_ORDER
SETTINGS = {"seconds": SECONDS, "band": BAND, "max_orders": MAX_ORDERS, "min_order": MIN_ORDER}
CYCLE_EVENTS = 11  # the most a batch cycle writes: up to 9 orders, a cancel and the cut
SHARE = 0.12  # of a batch session's cycles, this share are batch cycles


@dataclass
class Book:
    """A stream's batch state: reference prices, what each holder reserves, the resting orders."""

    prices: list[int]
    reserved: dict[int, list[int]] = field(default_factory=dict)
    resting: dict[int, dict[str, Any]] = field(default_factory=dict)
    pair: tuple[int, int] | None = None
    cuts: int = 0


def created(st) -> dict[str, Any]:
    """What SessionCreated adds for the stream's mechanism (as `orders.BatchSettings.payload`)."""
    if st.mechanism == "rfq":
        return {"mechanism": "rfq"}
    return {"mechanism": st.mechanism, "batch": dict(SETTINGS)}


def available(st, who: int, k: int) -> int:
    """What a holder may give of leg k: held less what its resting orders reserve."""
    reserved = st.book.reserved.get(who) if st.book is not None else None
    return st.holdings[who][k] - (reserved[k] if reserved else 0)


def plan(st, rng: random.Random, ids: dict[str, int], organiser: int) -> list[tuple[str, Any]]:
    """A batch cycle's events: orders (a cancel, maybe) and the organiser's cut, applied to the stream's
    holdings and book as they are planned (the cut's `cut_at` is its own time, filled in when written)."""
    book = st.book
    n = len(st.legs)
    for k in range(n):  # the reference drifts a little between cuts (within the band of the last)
        book.prices[k] = max(domain.PRICE_SCALE, book.prices[k] * rng.randint(985, 1015) // 1000)
    if book.pair is None or not book.resting:
        book.pair = tuple(rng.sample(range(n), 2))
    a, b = book.pair
    holders = st.traders + st.makers
    events: list[tuple[str, Any]] = []
    for _ in range(rng.randint(3, 9)):
        who = rng.choice(holders)
        give, get = (a, b) if rng.random() < 0.5 else (b, a)
        free = available(st, who, give)
        quantity = free * rng.randint(5, 60) // 1000
        mine = sum(1 for o in book.resting.values() if o["owner"] == who)
        if quantity < MIN_ORDER or mine >= MAX_ORDERS:
            continue
        # Around the reference rate: some orders cross it, some do not.
        limit = book.prices[give] * domain.RATE_SCALE * rng.randint(9_700, 10_300) // (book.prices[get] * 10_000)
        lifetime = rng.choice((1, 1, 1, 2, None))
        ids["order"] += 1
        order = {"id": ids["order"], "owner": who, "give": give, "get": get, "rest": quantity, "limit": max(1, limit)}
        book.resting[order["id"]] = order | {"left": lifetime}
        book.reserved.setdefault(who, [0] * n)[give] += quantity
        events.append(
            (
                "OrderPlaced",
                {
                    "order_id": order["id"],
                    "user_id": who,
                    "give_leg": st.legs[give],
                    "get_leg": st.legs[get],
                    "quantity": quantity,
                    "limit_rate": order["limit"],
                    "batches": lifetime,
                },
            )
        )
    if book.resting and rng.random() < 0.3:
        gone = book.resting.pop(rng.choice(sorted(book.resting)))
        book.reserved[gone["owner"]][gone["give"]] -= gone["rest"]
        events.append(("OrderCancelled", {"order_id": gone["id"], "user_id": gone["owner"]}))
    events.append(("BatchCleared", _cut(st, ids)))
    return events


def _cut(st, ids: dict[str, int]) -> Callable[[dt.datetime], dict[str, Any]]:
    """Clear the book now (as `services.batches._cut` does) and age its orders; the payload waits for its time."""
    book = st.book
    orders = [
        batch.Order(o["id"], o["owner"], o["give"], o["get"], o["rest"], o["limit"])
        for o in sorted(book.resting.values(), key=lambda o: o["id"])
    ]
    reference = {leg: book.prices[k] for k, leg in enumerate(st.legs)}
    cleared = batch.make_book(st.legs, book.prices, Fraction(BAND), orders)
    result = batch.clear(cleared)
    fills = result.fills if isinstance(result, batch.Clearing) else ()
    for f in fills:
        row, reserved = st.holdings[f.owner], book.reserved[f.owner]
        row[f.give] -= f.given
        reserved[f.give] -= f.given
        row[f.get] += f.received
        book.resting[f.order]["rest"] = f.rest
    for o in orders:
        order = book.resting[o.id]
        status, order["left"] = rules.after_cut(order["rest"], order["left"])
        if status != "resting":
            book.reserved[order["owner"]][order["give"]] -= order["rest"]
            del book.resting[o.id]
    book.cuts += 1
    number = book.cuts
    ticks = {}  # the oracle's ticks behind the reference prices (the loader stores them, at the cut)
    for leg in st.legs:
        ids["tick"] += 1
        ticks[leg] = ids["tick"]
    volume = domain.money_str(result.volume if isinstance(result, batch.Clearing) else 0)

    def payload(at: dt.datetime) -> dict[str, Any]:
        return {
            "batch": number,
            "cut_at": at.isoformat(),
            "legs": list(st.legs),
            "band": BAND,
            "reference": reference,
            "ticks": ticks,
            "orders": [o.id for o in orders],
            "result": batch.result_to_dict(result),
            "volume": volume,
            "next_cut_at": rules.next_cut(at, SECONDS, at).isoformat(),
        }

    return payload


def lapse(st) -> None:
    """Trading is over: every resting order lapses and frees what it reserved."""
    if st.book is not None:
        st.book.resting.clear()
        st.book.reserved.clear()
