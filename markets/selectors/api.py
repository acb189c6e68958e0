"""The JSON API's answers: each shape built from the read models, once (the endpoints only pick one).

Quantities, rates, prices and money are exact decimal strings; people are named by their account
(`username`, what `/me` says and what an organiser adds by) and by the name people see (`name`, `taker_name`...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Prefetch

from ledger import clock
from ledger.models import Event
from markets import domain
from markets.models import RFQ, Batch, Fill, Holding, Order, Participant, Payout, Quote, Session, Settlement, Trade
from markets.selectors import batches
from markets.selectors.fixing_record import fixing_out, rule_words
from markets.selectors.margin import settings_out
from markets.selectors.sealed import SEALED_TYPES, Seal
from markets.selectors.sessions import is_paused, status_note
from oracle.models import Tick


def session_out(session: Session) -> dict[str, Any]:
    now = clock.now()
    phase = session.phase(now)
    return {
        "id": session.id,
        "title": session.title,
        "status": phase,
        "status_note": status_note(session, now),
        "legs": list(session.legs),
        "q": [domain.qty_str(x) for x in session.q],
        "t1": session.t1,
        "t2": session.t2,
        "start_mode": session.start_mode,
        "end_mode": session.end_mode,
        "allocation_mode": session.allocation_mode,
        "fixing_rule": session.fixing_rule,
        "fixing_described": rule_words(session.fixing_rule),
        "visibility": session.visibility,
        "created_by": session.created_by.username,
        "created_at": session.created_at,
        "opened_at": session.opened_at,
        "settled_at": session.settled_at,
        "waiting_reason": session.waiting_reason,
        **pause_out(session, phase),
        "version": session.version,
        "last_seq": session.last_seq,
        "participants": [participant_out(p) for p in session.participants.all()],
        **mechanism_out(session),
        **settings_out(session),
    }


def mechanism_out(session: Session) -> dict[str, Any]:
    """How the session trades and, for batch auctions, their settings and where the clock stands (null for
    an RFQ-only session)."""
    batch = session.trades_by_batch
    return {
        "mechanism": session.mechanism,
        "batch_seconds": session.batch_seconds if batch else None,
        "batch_band": session.batch_band if batch else None,
        "max_orders": session.max_orders if batch else None,
        "min_order": domain.qty_str(session.min_order) if batch and session.min_order is not None else None,
        "next_cut_at": session.next_cut_at if batch else None,
        "batches": session.batches,
    }


def pause_out(session: Session, phase: str) -> dict[str, Any]:
    """The organiser's pause as it stands: only an open session is paused (`is_paused`). The row keeps
    the pause of a session settled or closed while paused (the log has no resume), but it is over."""
    paused = is_paused(session, phase)
    return {
        "paused": paused,
        "paused_at": session.paused_at if paused else None,
        "pause_reason": session.pause_reason if paused else "",
    }


def participant_out(participant: Participant) -> dict[str, Any]:
    return {
        "session_id": participant.session_id,
        "username": participant.username,
        "name": participant.display_name,
        "role": participant.role,
        "joined_at": participant.joined_at,
    }


def quote_out(quote: Quote, quantity: int, ends: dt.datetime | None = None) -> dict[str, Any]:
    """A quote as of now (`ends`: when its session's trading ends by the clock, see `Session.trading_ends`)."""
    return {
        "id": quote.id,
        "rfq_id": quote.rfq_id,
        "maker": quote.maker.username,
        "maker_name": quote.maker.display_name,
        "rate": domain.rate_str(quote.rate),
        "receive": domain.qty_str(domain.trade_receive(quantity, quote.rate)),
        "expires_at": quote.expires_at,
        "status": quote.status_at(clock.now(), ends),
        "created_at": quote.created_at,
    }


def rfq_out(rfq: RFQ, quotes: list[Quote] | None = None, ends: dt.datetime | None = None) -> dict[str, Any]:
    """An RFQ with its quotes (`quotes` when the caller has them: a new RFQ has none), as of now: open
    ones read lapsed from their session's trading end (`ends`) on, as the log will record them."""
    quotes = rfq.quotes.all() if quotes is None else quotes
    status = rfq.status_at(clock.now(), ends)
    return {
        "id": rfq.id,
        "session_id": rfq.session_id,
        "taker": rfq.taker.username,
        "taker_name": rfq.taker.display_name,
        "give_leg": rfq.give_leg,
        "get_leg": rfq.get_leg,
        "quantity": domain.qty_str(rfq.quantity),
        "status": status,
        "created_at": rfq.created_at,
        "closed_at": rfq.closed_at,  # as recorded: TradingClosed stamps it when the scheduler records it
        "quotes": [quote_out(q, rfq.quantity, ends) for q in quotes],
    }


def rfqs():
    quotes = Quote.objects.select_related("maker").order_by("id")
    return RFQ.objects.select_related("taker").prefetch_related(Prefetch("quotes", queryset=quotes))


def trade_out(trade: Trade) -> dict[str, Any]:
    return {
        "id": trade.id,
        "session_id": trade.session_id,
        "rfq_id": trade.rfq_id,
        "quote_id": trade.quote_id,
        "taker": trade.taker.username,
        "taker_name": trade.taker.display_name,
        "maker": trade.maker.username,
        "maker_name": trade.maker.display_name,
        "give_leg": trade.give_leg,
        "get_leg": trade.get_leg,
        "give_qty": domain.qty_str(trade.give_qty),
        "get_qty": domain.qty_str(trade.get_qty),
        "rate": domain.rate_str(trade.rate),
        "executed_at": trade.executed_at,
        "seq": trade.seq,
    }


def settlement_out(session: Session) -> dict[str, Any]:
    settlement = Settlement.objects.filter(session=session).first()
    payouts = Payout.objects.filter(session=session).select_related("participant").order_by("participant__username")
    return {
        "session_id": session.id,
        "status": session.status,
        "settled": settlement is not None,
        "settled_at": settlement.settled_at if settlement else None,
        "prices": {leg: domain.price_str(settlement.prices[leg]) for leg in session.legs} if settlement else {},
        "fixing": fixing_out(settlement.fixing, settlement.prices, session.legs) if settlement else None,
        "total": settlement.total if settlement else None,
        "expected": settlement.expected if settlement else None,
        "payouts": [
            {
                "username": p.participant.username,
                "name": p.participant.display_name,
                "role": p.participant.role,
                "amount": p.amount,
                "cash": p.participant.cash,
            }
            for p in payouts
        ],
    }


def tick_out(tick: Tick) -> dict[str, Any]:
    """A tick as the API shows it: its id (what a fixing record names), price, instant, the feed that
    stored it and the volume traded at it (units, exact; None when the feed gave none)."""
    volume = domain.qty_str(tick.volume) if tick.volume is not None else None
    return {
        "id": tick.id,
        "price": domain.price_str(tick.price),
        "at": tick.at,
        "source": tick.source,
        "volume": volume,
    }


def allocations(session: Session) -> dict[str, Any]:
    """x and the initial allocation of every holder, per leg, with the totals (= q once allocated)."""
    legs = list(session.legs)
    rows: dict[int, dict[str, Any]] = {}
    totals = [0] * len(legs)
    holdings = (
        Holding.objects.filter(session=session)
        .select_related("participant")
        .order_by("participant__username", "participant__user_id", "leg_index")
    )
    for h in holdings:
        row = rows.setdefault(
            h.participant.user_id,
            {
                "username": h.participant.username,
                "name": h.participant.display_name,
                "role": h.participant.role,
                "x": {},
                "initial": {},
            },
        )
        row["x"][h.leg] = domain.qty_str(h.qty)
        row["initial"][h.leg] = domain.qty_str(h.initial)
        totals[h.leg_index] += h.qty
    return {
        "session_id": session.id,
        "status": session.status,
        "legs": legs,
        "as_of_seq": session.last_seq,
        "holdings": list(rows.values()),
        "totals": {leg: domain.qty_str(t) for leg, t in zip(legs, totals, strict=True)},
    }


def events_page(session: Session, after: int, limit: int, viewer) -> dict[str, Any]:
    """The session's events after `after`, `limit` at most, in the one serialised shape, as `viewer` may read
    them: others' orders still sealed say so (`sealed.Seal`); their hashes stay those of the whole payload."""
    from markets.selectors.events import event_json

    rows = list(Event.objects.filter(stream=session.stream, seq__gt=after).order_by("seq")[: limit + 1])
    page = rows[:limit]
    seal = Seal(session, viewer)
    return {
        "session_id": session.id,
        "events": [sealed_json(event_json(e), seal) for e in page],
        "next_after": page[-1].seq if page else after,
        "has_more": len(rows) > limit,
    }


def sealed_json(event: dict[str, Any], seal: Seal) -> dict[str, Any]:
    """An event's JSON shape (`event_json`) with the payload this viewer may read (a new dict when sealed)."""
    if event["type"] not in SEALED_TYPES:
        return event
    shown = seal.payload(event["type"], event["payload"])
    return event if shown is event["payload"] else {**event, "payload": shown}


def prices(session: Session, history: int, source: str | None = None) -> dict[str, Any]:
    """The newest tick per leg, and up to `history` recent ticks per leg, oldest first (of every feed, or
    of the feed `source`): one indexed read per leg."""
    latest: dict[str, Any] = {}
    recent: dict[str, list[dict[str, Any]]] = {}
    for leg in session.legs:
        ticks = Tick.objects.filter(session_id=session.id, symbol=leg)
        if source is not None:
            ticks = ticks.filter(source=source)
        newest = list(ticks.order_by("-at", "-id")[: max(history, 1)])
        if newest:
            latest[leg] = tick_out(newest[0])
        if history:
            recent[leg] = [tick_out(t) for t in reversed(newest)]
    return {"session_id": session.id, "legs": list(session.legs), "latest": latest, "history": recent}


# ---------------------------------------------------------------- batch auctions


def order_out(order: Order, received: int, now: dt.datetime, ends: dt.datetime | None) -> dict[str, Any]:
    """An order as its owner (or the organiser) reads it, as of `now`: `received` what its fills brought."""
    return {
        "id": order.id,
        "session_id": order.session_id,
        "user_id": order.participant.user_id,
        "username": order.participant.username,
        "name": order.participant.display_name,
        "give_leg": order.give_leg,
        "get_leg": order.get_leg,
        "quantity": domain.qty_str(order.quantity),
        "rest": domain.qty_str(order.rest),
        "given": domain.qty_str(order.quantity - order.rest),
        "received": domain.qty_str(received),
        "limit_rate": domain.rate_str(order.limit_rate),
        "status": batches.order_status(order, now, ends),
        "gtc": order.batches_left is None,
        "batches_left": order.batches_left,
        "placed_at": order.placed_at,
        "closed_at": order.closed_at,
        "seq": order.seq,
    }


def orders_out(session: Session, orders: list[Order]) -> list[dict[str, Any]]:
    received = batches.received_by_order([o.id for o in orders])
    now, ends = clock.now(), session.trading_ends
    return [order_out(o, received.get(o.id, 0), now, ends) for o in orders]


def positions_out(session: Session, rows: list[batches.HolderPosition]) -> dict[str, Any]:
    legs = list(session.legs)

    def per_leg(values: list[int]) -> dict[str, str]:
        return {leg: domain.qty_str(v) for leg, v in zip(legs, values, strict=True)}

    return {
        "session_id": session.id,
        "status": session.phase(clock.now()),
        "legs": legs,
        "as_of_seq": session.last_seq,
        "holdings": [
            {
                "user_id": r.user_id,
                "username": r.username,
                "name": r.name,
                "role": r.role,
                "held": per_leg(r.held),
                "reserved": per_leg(r.reserved),
                "available": per_leg(r.available),
                "resting_orders": r.resting,
            }
            for r in rows
        ],
    }


def fill_out(fill: Fill) -> dict[str, Any]:
    return {
        "order": fill.order_id,
        "user_id": fill.participant.user_id,
        "username": fill.participant.username,
        "name": fill.participant.display_name,
        "give_leg": fill.give_leg,
        "get_leg": fill.get_leg,
        "given": domain.qty_str(fill.given),
        "received": domain.qty_str(fill.received),
        "rest": domain.qty_str(fill.rest),
    }


def batch_out(session: Session, cut: Batch, fills: list[Fill]) -> dict[str, Any]:
    """One recorded batch: when it cut, its prices per leg (none when nothing traded, with the reason), the
    oracle's prices and ticks behind the band, the volume, and every fill (public once the batch cleared)."""
    return {
        "session_id": session.id,
        "number": cut.number,
        "cut_at": cut.cut_at,
        "outcome": cut.outcome,
        "reason": cut.reason,
        "prices": {leg: domain.price_str(cut.prices[leg]) for leg in session.legs if leg in cut.prices},
        "reference": {leg: domain.price_str(cut.reference[leg]) for leg in session.legs if leg in cut.reference},
        "ticks": {leg: cut.ticks[leg] for leg in session.legs if leg in cut.ticks},
        "volume": cut.volume,
        "orders": cut.orders,
        "filled": cut.filled,
        "seq": cut.seq,
        "fills": [fill_out(f) for f in fills],
    }


def batches_out(session: Session, cuts: list[Batch]) -> list[dict[str, Any]]:
    fills = batches.fills_of(cuts)
    return [batch_out(session, b, fills[b.id]) for b in cuts]
