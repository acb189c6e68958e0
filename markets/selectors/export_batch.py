"""orders.csv and fills.csv: a session's batch auctions read from its log up to the export's cut, as
holdings.csv is, with the rules the projection applies (`domain.orders.after_cut` ages an order at each
cut; trading's end lapses what rests), never a second set of them.

Sealed orders stay sealed (`selectors.sealed`): for a viewer who does not see every order, another's order
that rests or was cancelled as of the cut is a row with its id, times, status and seq only, as the log
shows it. Fills are public: a batch that cleared reveals every order it filled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ledger.chain import format_at
from markets import domain
from markets.domain import orders as rules
from markets.models import Order

if TYPE_CHECKING:
    from markets.selectors.export import SessionExport

# The events that make and move orders; the ones that end trading lapse every resting order.
BOOK_EVENTS = ("SessionCreated", "OrderPlaced", "OrderCancelled", "BatchCleared", "TradingClosed", "SessionSettled")
ENDS = frozenset({"TradingClosed", "SessionSettled"})
HIDDEN = frozenset({Order.Status.RESTING, Order.Status.CANCELLED})
ORDER_HEADER = ["id", "placed_at", "user_id", "username", "name", "give_leg", "get_leg", "quantity", "limit_rate",
                "lifetime", "batches_left", "status", "rest", "given", "received", "closed_at", "seq", "sealed"]  # fmt: skip
FILL_HEADER = ["batch", "cut_at", "batch_seq", "order_id", "user_id", "username", "name", "give_leg", "get_leg",
               "given", "received", "rest"]  # fmt: skip


@dataclass
class BookOrder:
    id: int
    user: int
    give: str
    get: str
    quantity: int
    limit: int
    batches: int | None  # as placed; None: good till cancelled
    left: int | None
    placed_at: dt.datetime
    seq: int
    rest: int = 0
    received: int = 0
    status: str = Order.Status.RESTING
    closed_at: dt.datetime | None = None


@dataclass
class BookFill:
    batch: int
    cut_at: str
    seq: int
    prices: list[int]
    order: int
    user: int
    give: str
    get: str
    given: int
    received: int
    rest: int


class Book:
    """Every order of a session and every fill, as its log has them (`events`: in order, up to a cut)."""

    def __init__(self, events: Iterable[Any]) -> None:
        self.legs: list[str] = []
        self.orders: dict[int, BookOrder] = {}
        self.fills: list[BookFill] = []
        for event in events:
            self._apply(event)

    @cached_property
    def hidden(self) -> set[int]:
        """The orders sealed as of the cut: resting, or cancelled (they never met the market)."""
        return {o.id for o in self.orders.values() if o.status in HIDDEN}

    def _apply(self, event: Any) -> None:
        d = event.data
        if event.type == "SessionCreated":
            self.legs = list(d["legs"])
        elif event.type == "OrderPlaced":
            self.orders[d["order_id"]] = BookOrder(
                d["order_id"], d["user_id"], d["give_leg"], d["get_leg"], d["quantity"], d["limit_rate"],
                d["batches"], d["batches"], event.at, event.seq, rest=d["quantity"],
            )  # fmt: skip
        elif event.type == "OrderCancelled":
            self._close(self.orders[d["order_id"]], Order.Status.CANCELLED, event.at)
        elif event.type in ENDS:
            for order in self.orders.values():
                if order.status == Order.Status.RESTING:
                    self._close(order, Order.Status.LAPSED, event.at)
        elif event.type == "BatchCleared":
            self._cut(event, d)

    def _cut(self, event: Any, d: dict[str, Any]) -> None:
        cleared = d["result"]["result"] == "cleared"
        fills = {f["order"]: f for f in d["result"]["fills"]} if cleared else {}
        for oid in d["orders"]:
            order = self.orders[oid]
            fill = fills.get(oid)
            if fill is not None:
                order.rest, order.received = fill["rest"], order.received + fill["received"]
                self.fills.append(BookFill(d["batch"], d["cut_at"], event.seq, d["result"]["prices"], oid, order.user,
                                           order.give, order.get, fill["given"], fill["received"], fill["rest"]))  # fmt: skip
            status, order.left = rules.after_cut(order.rest, order.left)
            if status != Order.Status.RESTING:
                self._close(order, status, event.at)

    @staticmethod
    def _close(order: BookOrder, status: str, at: dt.datetime) -> None:
        order.status, order.closed_at = status, at


def order_rows(export: SessionExport) -> Iterator[list[str]]:
    """orders.csv: one row per order by id, sealed rows as `export`'s viewer may read them."""
    book = export.book
    for o in sorted(book.orders.values(), key=lambda o: o.id):
        closed = format_at(o.closed_at) if o.closed_at else ""
        if export.seals(o.id, o.user, book.hidden):
            yield [str(o.id), format_at(o.placed_at), *[""] * 9, o.status, "", "", "", closed, str(o.seq), "true"]
            continue
        yield [str(o.id), format_at(o.placed_at), str(o.user), export.names.get(o.user, ""),
               export.shown.get(o.user, ""), o.give, o.get, domain.qty_str(o.quantity), domain.rate_str(o.limit),
               "gtc" if o.batches is None else str(o.batches), "" if o.left is None else str(o.left), o.status,
               domain.qty_str(o.rest), domain.qty_str(o.quantity - o.rest), domain.qty_str(o.received), closed,
               str(o.seq), "false"]  # fmt: skip


def fill_header(legs: list[str]) -> list[str]:
    return [*FILL_HEADER, *(f"price:{leg}" for leg in legs)]


def fill_rows(export: SessionExport) -> Iterator[list[str]]:
    """fills.csv: per batch and order, what it gave, received and left, and the batch's price per leg."""
    for f in export.book.fills:
        at = format_at(dt.datetime.fromisoformat(f.cut_at))
        yield [str(f.batch), at, str(f.seq), str(f.order), str(f.user), export.names.get(f.user, ""),
               export.shown.get(f.user, ""), f.give, f.get, domain.qty_str(f.given), domain.qty_str(f.received),
               domain.qty_str(f.rest), *map(domain.price_str, f.prices)]  # fmt: skip
