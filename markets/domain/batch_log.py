"""Batch auctions read back from the log alone (pure: events in, books out): what `verify_ledger` re-clears.

Walking a session's events in order, the orders resting at each cut are the ones placed before it (by
their OrderPlaced's time), not cancelled, not filled, expired or lapsed at an earlier cut, with what an
earlier fill left of them. `books` yields, for every BatchCleared, the book rebuilt that way and the
problems found on the way (a cut that names other orders than the log has resting, a next cut off the
grid); `markets.domain.batch.verify` then checks the record against the book and re-clears it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from markets.domain import batch
from markets.domain import orders as rules


@dataclass
class _Resting:
    id: int
    owner: int
    give: str
    get: str
    rest: int
    limit: int
    left: int | None
    placed_at: dt.datetime


@dataclass
class Cut:
    """One BatchCleared, as the log has it: its seq, the book rebuilt from the log (None when the record
    has no reference prices: nothing could clear), the recorded result and the problems found before
    re-clearing."""

    seq: int
    number: int
    book: batch.Book | None
    recorded: dict
    problems: list[str] = field(default_factory=list)


def books(events: Iterable[Any]) -> Iterator[Cut]:
    """`events`: a session's events in version order, each with `type`, `data` (the payload), `at`, `seq`."""
    legs: list[str] = []
    seconds: int | None = None
    band = ""
    resting: dict[int, _Resting] = {}
    next_cut: dt.datetime | None = None
    for event in events:
        d = event.data
        if event.type == "SessionCreated":
            legs, settings = list(d["legs"]), rules.settings_of(d)
            seconds, band = settings.seconds, settings.band
        elif event.type == "SessionOpened" and seconds:
            next_cut = event.at + dt.timedelta(seconds=seconds)
        elif event.type == "OrderPlaced":
            resting[d["order_id"]] = _Resting(
                d["order_id"], d["user_id"], d["give_leg"], d["get_leg"], d["quantity"], d["limit_rate"], d["batches"],
                event.at,
            )  # fmt: skip
        elif event.type == "OrderCancelled":
            resting.pop(d["order_id"], None)
        elif event.type in ("TradingClosed", "SessionSettled"):
            resting.clear()
        elif event.type == "BatchCleared":
            cut = dt.datetime.fromisoformat(d["cut_at"])
            yield _cut(event, d, cut, next_cut, legs, band, seconds or 1, resting)
            next_cut = dt.datetime.fromisoformat(d["next_cut_at"]) if d.get("next_cut_at") else None
            _age(d, resting)


def _cut(event, d: dict, cut: dt.datetime, scheduled, legs: list[str], band: str, seconds: int, resting: dict) -> Cut:
    problems = []
    if cut not in (scheduled, event.at):
        problems.append(f"batch {d['batch']}: cut at {cut.isoformat()}, neither its scheduled cut nor when it ran")
    in_book = sorted(o.id for o in resting.values() if o.placed_at < cut)
    if d["orders"] != in_book:
        problems.append(f"batch {d['batch']}: its book names orders {d['orders'][:10]}, the log has {in_book[:10]}")
    if d["legs"] != legs or d["band"] != band:
        problems.append(f"batch {d['batch']}: legs or band differ from the session's")
    if d.get("next_cut_at") and rules.next_cut(cut, seconds, event.at) != dt.datetime.fromisoformat(d["next_cut_at"]):
        problems.append(f"batch {d['batch']}: next cut {d['next_cut_at']} is off the session's grid")
    book = None
    if d["reference"]:
        index = {leg: k for k, leg in enumerate(legs)}
        orders = [
            batch.Order(o.id, o.owner, index[o.give], index[o.get], o.rest, o.limit)
            for o in sorted(resting.values(), key=lambda o: o.id)
            if o.placed_at < cut and o.id not in d.get("margin_held", ())  # held out: their fills broke margin
        ]
        book = batch.make_book(legs, [d["reference"][leg] for leg in legs], rules.band_fraction(band), orders)
    return Cut(event.seq, d["batch"], book, d["result"], problems)


def _age(d: dict, resting: dict[int, _Resting]) -> None:
    """The cut's orders one batch older: what the fills left, then filled, expired or resting on."""
    fills = {f["order"]: f for f in d["result"].get("fills", ())} if d["result"]["result"] == "cleared" else {}
    for oid in d["orders"]:
        order = resting.get(oid)
        if order is None:
            continue
        if oid in fills:
            order.rest = fills[oid]["rest"]
        status, order.left = rules.after_cut(order.rest, order.left)
        if status != "resting":
            del resting[oid]
