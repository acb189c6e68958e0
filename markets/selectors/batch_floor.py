"""Batch auctions on the floor. Shared by every viewer: when the next cut falls, the last batch (its price
per leg beside the oracle's reference, volume, how many orders filled) and the batch history. Per holder:
their resting orders, held / reserved / available per leg and their fills, read for every holder (or the
few a push names) at once, so that a push renders each viewer's panel from one read (`push.render`).

Sealed orders stay sealed: nothing here that is shared names an order, its size or its limit; each
holder's own part holds only their own orders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum, Window
from django.db.models.functions import RowNumber

from markets import domain, pricing
from markets.models import Batch, Fill, Holding, Order, Session
from markets.selectors.common import q_dec
from oracle import units

BATCH_ROWS = 10  # the batch history on the floor: the newest ten (the batches page has the rest)
MY_FILLS = 8  # each holder's newest fills on the floor
PAGE_ROWS = 50  # the batches page


def _price(base: int | None) -> Decimal | None:
    return domain.to_decimal(base, domain.PRICE_DP) if base is not None else None


def _rate(base: int) -> Decimal:
    return domain.to_decimal(base, domain.RATE_DP)


@dataclass
class LegPrice:
    leg: str
    price: Decimal | None  # the clearing price (None: nothing cleared)
    reference: Decimal | None  # the oracle's price at the cut
    vs: str = ""  # the clearing price against the reference, e.g. "+0.42%"
    traded: Decimal | None = None  # units of the leg that changed hands (the last batch only)


@dataclass
class BatchRow:
    number: int
    cut_at: dt.datetime
    cleared: bool
    reason: str
    orders: int
    filled: int
    volume: Decimal
    legs: list[LegPrice]
    prices: dict[str, int] = field(default_factory=dict)  # base units, for the rates of fills


def _vs(price: int | None, reference: int | None) -> str:
    if price is None or not reference:
        return ""
    return f"{Decimal(price - reference) * 100 / Decimal(reference):+.2f}%"


def batch_row(session: Session, b: Batch) -> BatchRow:
    prices = {leg: int(p) for leg, p in (b.prices or {}).items()}
    reference = {leg: int(p) for leg, p in (b.reference or {}).items()}
    legs = [
        LegPrice(leg, _price(prices.get(leg)), _price(reference.get(leg)), _vs(prices.get(leg), reference.get(leg)))
        for leg in session.legs
    ]
    return BatchRow(
        number=b.number,
        cut_at=b.cut_at,
        cleared=b.outcome == "cleared",
        reason=b.reason,
        orders=b.orders,
        filled=b.filled,
        volume=Decimal(b.volume),
        legs=legs,
        prices=prices,
    )


def batch_rows(session: Session, limit: int = BATCH_ROWS, before: int | None = None) -> list[BatchRow]:
    """The session's batches, newest first (below batch number `before`, for the next page)."""
    batches = Batch.objects.filter(session_id=session.id)
    if before is not None:
        batches = batches.filter(number__lt=before)
    return [batch_row(session, b) for b in batches.order_by("-number")[:limit]]


def band_percent(band: str) -> str:
    """The band as people read it: "0.10" is 10, "0.0025" is 0.25 (percent)."""
    if not band:
        return ""
    text = format(Decimal(band) * 100, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def cut_context(session: Session) -> dict[str, Any]:
    """The cut panel: the next cut (epoch ms for the countdown), the batch it clears, the settings."""
    cut = session.next_cut_at
    return {
        "next_cut_ms": int(cut.timestamp() * 1000) if cut else None,
        "next_number": session.batches + 1,
        "band_pct": band_percent(session.batch_band),
        "min_order": q_dec(session.min_order) if session.min_order is not None else None,
    }


def batch_context(session: Session, parts: frozenset[str]) -> dict[str, Any]:
    """What the floor's shared batch panels show (`cut`, `batch`), for the panels in `parts`; nothing
    for a session that trades by RFQ only."""
    if not session.trades_by_batch:
        return {}
    context: dict[str, Any] = {}
    if "cut" in parts:
        context["cut"] = cut_context(session)
    if "batch" in parts:
        rows = batch_rows(session)
        if rows and rows[0].cleared:
            _traded(session, rows[0])
        context |= {"batches": rows, "last_batch": rows[0] if rows else None}
    return context


def _traded(session: Session, row: BatchRow) -> None:
    """What changed hands of each leg in a batch: what its fills gave of it (= what they received of it)."""
    given = (
        Fill.objects.filter(batch__session_id=session.id, batch__number=row.number)
        .values_list("give_leg")
        .annotate(units=Sum("given"))
        .order_by()
    )
    moved = {leg: int(units) for leg, units in given}  # PostgreSQL sums bigints as numeric
    for leg in row.legs:
        leg.traded = q_dec(moved[leg.leg]) if moved.get(leg.leg) else None


def moves_said(session: Session, trades: int) -> str:
    """What moved holdings, for the zero-sum check: trades, and in a batch session its batches."""
    said = f"{trades} trade{'' if trades == 1 else 's'}" if session.trades_by_rfq else ""
    if session.trades_by_batch:
        batches = f"{session.batches} batch{'' if session.batches == 1 else 'es'}"
        said = f"{said}, {batches}" if said else batches
    return said


# ---------------------------------------------------------------- each holder's own part


@dataclass
class MyOrder:
    id: int
    give_leg: str
    get_leg: str
    quantity: Decimal
    rest: Decimal
    limit: Decimal
    life: str  # "next batch only", "3 batches left", "until cancelled"
    placed_at: dt.datetime
    placed_ms: int


@dataclass
class MyLeg:
    leg: str
    held: Decimal
    reserved: Decimal
    available: Decimal


@dataclass
class MyFill:
    batch: int
    order: int
    give_leg: str
    gave: Decimal
    get_leg: str
    got: Decimal
    rate: Decimal | None  # the batch's one rate for the pair: price of give / price of get
    rest: Decimal


@dataclass
class Mine:
    """One holder's part of a batch session's floor."""

    legs: list[MyLeg] = field(default_factory=list)
    orders: list[MyOrder] = field(default_factory=list)
    fills: list[MyFill] = field(default_factory=list)
    last_batch: int = 0  # the session's newest batch: its fills are marked


def life_text(batches_left: int | None) -> str:
    if batches_left is None:
        return "until cancelled"
    if batches_left == 1:
        return "next batch only"
    return f"{batches_left} batches"


def holders_part(session: Session, users: Iterable[int] | None = None) -> dict[int, Mine]:
    """{user id: `Mine`} for every holder of the session (or those in `users`): three reads, whatever
    their number. Only their own orders, each in its own part."""
    wanted = None if users is None else sorted(set(users))
    scope = {"participant__user_id__in": wanted} if wanted is not None else {}
    parts: dict[int, Mine] = {}
    legs = list(session.legs)
    rows = (
        Holding.objects.filter(session_id=session.id, **scope)
        .order_by("participant_id", "leg_index")
        .values_list("participant__user_id", "leg_index", "qty", "reserved")
    )
    for user_id, k, qty, reserved in rows:
        mine = parts.setdefault(user_id, Mine(legs=[MyLeg(leg, q_dec(0), q_dec(0), q_dec(0)) for leg in legs]))
        mine.legs[k] = MyLeg(legs[k], q_dec(qty), q_dec(reserved), q_dec(qty - reserved))
    resting = (
        Order.objects.filter(session_id=session.id, status=Order.Status.RESTING, **scope)
        .order_by("-id")
        .values_list(
            "participant__user_id",
            "id",
            "give_leg",
            "get_leg",
            "quantity",
            "rest",
            "limit_rate",
            "batches_left",
            "placed_at",
        )
    )
    for user_id, oid, give, get, qty, rest, limit, left, placed in resting:
        part = parts.setdefault(user_id, Mine())
        part.orders.append(
            MyOrder(
                oid,
                give,
                get,
                q_dec(qty),
                q_dec(rest),
                _rate(limit),
                life_text(left),
                placed,
                int(placed.timestamp() * 1000),
            )
        )
    _attach_fills(session, parts, wanted)
    return parts


def _attach_fills(session: Session, parts: dict[int, Mine], users: list[int] | None) -> None:
    """Each holder's newest MY_FILLS fills (one read: the newest per participant, by a window), with the
    rate their batch cleared the pair at."""
    fills = Fill.objects.filter(batch__session_id=session.id)
    if users is not None:
        fills = fills.filter(participant__user_id__in=users)
    newest = (
        fills.annotate(
            k=Window(RowNumber(), partition_by=[F("participant_id")], order_by=[F("batch__number").desc(), F("id")])
        )
        .filter(k__lte=MY_FILLS)
        .order_by("-batch__number", "order_id")
        .values_list(
            "participant__user_id",
            "batch__number",
            "order_id",
            "give_leg",
            "given",
            "get_leg",
            "received",
            "rest",
            "batch__prices",
        )
    )
    for user_id, number, oid, give, given, get, received, rest, prices in newest:
        rate = None
        if prices and prices.get(give) and prices.get(get):
            rate = _rate(pricing.implied_rate(int(prices[give]), int(prices[get])))
        part = parts.setdefault(user_id, Mine())
        part.fills.append(MyFill(number, oid, give, q_dec(given), get, q_dec(received), rate, q_dec(rest)))
    for part in parts.values():
        part.last_batch = session.batches


def placed_notice(order: Order) -> str:
    """What placing did, said next to the form: the order as the market will read it."""
    qty, limit = units.short(order.quantity, domain.QTY_DP), units.short(order.limit_rate, domain.RATE_DP)
    return (
        f"Order placed: give up to {qty} {order.give_leg} for {order.get_leg} at {limit} or better, "
        f"{life_text(order.batches_left)} (order {order.id}, sealed until its batch clears)"
    )


def cancelled_notice(order: Order) -> str:
    rest = units.short(order.rest, domain.QTY_DP)
    return f"Order {order.id} cancelled: {rest} {order.give_leg} no longer reserved"


def cleared_notice(b: Batch) -> str:
    """What "Clear now" did, said to the organiser next to the button."""
    if b.outcome != "cleared":
        return f"Batch {b.number} cut now: nothing traded ({b.reason})"
    return f"Batch {b.number} cleared now: {b.filled} of {b.orders} orders filled, volume {Decimal(b.volume):,.2f}"
