"""Events as people and programs read them: the one JSON shape of an event (the API's pages and the
stream both send `event_json`), and the one-line summary the floor's log shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.chain import format_at, parse_at
from ledger.models import Event
from markets import domain, floor_sql
from markets.models import Session, Trade, stream_name
from markets.selectors import action_banner, sealed
from oracle import units

EVENT_ROWS = 25


def event_json(event: Event) -> dict[str, Any]:
    """An event for programs, the same in `GET /sessions/{id}/events` and on the stream: its payload as
    an object, its time exactly as hashed."""
    return {
        "seq": event.seq,
        "stream": event.stream,
        "version": event.version,
        "type": event.type,
        "payload": event.data,
        "at": format_at(event.at),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


@dataclass
class EventRow:
    seq: int
    version: int
    type: str
    at: dt.datetime
    summary: str
    hash: str


def summarize(event_type: str, d: dict[str, Any], names: dict[int, str] | None = None) -> str:
    """One line an auditor can read, from the event's own payload; `names` gives the display name of
    each user id the payload names (logs written before ids name people by username)."""
    names = names or {}

    def who(side: str) -> str:
        if f"{side}_id" in d:
            return names.get(d[f"{side}_id"], f"user #{d[f'{side}_id']}")
        return str(d.get(side, "?"))

    match event_type:
        case "SessionCreated":
            return f"{', '.join(d['legs'])}; q = {' / '.join(units.short(x, domain.QTY_DP) for x in d['q'])}"
        case "ParticipantJoined":
            return f"{d.get('name') or d['username']} as {d['role']}"
        case "InitialAllocationAssigned":
            holders = d.get("holdings_by_id", d.get("holdings", {}))
            return f"{d['mode'].replace('_', '-')} to {len(holders)} holders"
        case "SessionOpened":
            return "trading open"
        case "SessionCancelled":
            return f"cancelled: {d['reason']}"
        case "RFQRequested":
            return f"RFQ {d['rfq_id']}: {who('taker')} gives {units.short(d['quantity'], domain.QTY_DP)} {d['give_leg']} for {d['get_leg']}"
        case "QuoteProvided":
            return f"quote {d['quote_id']} on RFQ {d['rfq_id']}: {who('maker')} at {units.short(d['rate'], domain.RATE_DP)}"
        case "QuoteWithdrawn":
            return f"quote {d['quote_id']} withdrawn{_why(d)}"
        case "QuotesExpired":
            ids = d["quote_ids"]
            return f"quote{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} expired"
        case "RFQCancelled":
            return f"RFQ {d['rfq_id']} cancelled{_why(d)}"
        case "TradeExecuted":
            return (
                f"trade {d['trade_id']}: {who('taker')} {units.short(d['give_qty'], domain.QTY_DP)} {d['give_leg']} → "
                f"{units.short(d['get_qty'], domain.QTY_DP)} {d['get_leg']} with {who('maker')}"
            )
        case "TradingClosed":
            return "trading closed at t2: open RFQs and live quotes lapse"
        case "SessionSettled":
            return f"settled; Σ payouts = {Decimal(d['total']):,.2f}"
        case "SettlementWaiting":
            return d["reason"]
        case "OrderPlaced" if d.get("sealed"):
            return f"order {d['order_id']}: sealed until its batch clears"
        case "OrderPlaced":
            life = (
                "good till cancelled"
                if d["batches"] is None
                else f"for {d['batches']} batch{'es' if d['batches'] > 1 else ''}"
            )
            buy_back = "buy-back (liquidation) " if d.get("liquidation") else ""
            return (
                f"{buy_back}order {d['order_id']}: {who('user')} gives up to {units.short(d['quantity'], domain.QTY_DP)} "
                f"{d['give_leg']} for {d['get_leg']} at {units.short(d['limit_rate'], domain.RATE_DP)} or better, {life}"
            )
        case "OrderCancelled" if d.get("sealed"):
            return f"order {d['order_id']}: sealed"
        case "OrderCancelled" if d.get("reason") in ("liquidation", "deleveraged"):
            why = "liquidation" if d["reason"] == "liquidation" else "its units were deleveraged"
            return f"order {d['order_id']} of {who('user')} cancelled ({why})"
        case "OrderCancelled" if d.get("reason") == "corporate_action":
            return f"order {d['order_id']} of {who('user')} cancelled{_why(d)}"
        case "OrderCancelled":
            return f"order {d['order_id']} cancelled by {who('user')}"
        case "BatchCleared":
            result = d["result"]
            if result["result"] != "cleared":
                return f"batch {d['batch']}: nothing traded ({result.get('message', result.get('reason', ''))})"
            prices = " · ".join(
                f"{leg} {units.short(p, domain.PRICE_DP)}" for leg, p in zip(d["legs"], result["prices"], strict=True)
            )
            return f"batch {d['batch']}: {len(result['fills'])} orders filled, volume {Decimal(d['volume']):,.2f}; {prices}"
        case "TradingPaused":
            by = who("by") if d.get("by_id") is not None else "the system"
            return f"trading paused by {by}" + (f": {d['reason']}" if d.get("reason") else "")
        case "TradingResumed":
            return f"trading resumed by {who('by') if d.get('by_id') is not None else 'the system'}"
        case "PositionLiquidated":
            then = (
                "its shorts are bought back in the next batch"
                if d["method"] == "buy_back"
                else "its shorts are deleveraged at the oracle's price"
            )
            return (
                f"{who('user')} liquidated: W {_money(d['W'])} is below zero (requirement {_money(d['requirement'])},"
                f" band ±{(Decimal(d['margin_band']) * 100).normalize():f}%); {then}"
            )
        case "AutoDeleveraged":
            return _deleveraged(d, names)
        case "CorporateActionScheduled":
            return action_banner.scheduled_summary(d)
        case "CorporateActionApplied":
            return action_banner.applied_summary(d)
    return ""


def _why(d: dict[str, Any]) -> str:
    """Why the system (not its owner) closed an RFQ, a quote or an order, when it did."""
    return {"liquidation": " (liquidation)", "corporate_action": " (a corporate action on its leg, at its cut)"}.get(
        d.get("reason", ""), ""
    )


def _money(text: str) -> str:
    return f"{Decimal(text):,.2f}"


def _deleveraged(d: dict[str, Any], names: dict[int, str]) -> str:
    """AutoDeleveraged in a line: whose shorts were closed, against whom, with how much, paid how."""

    def name(user: int) -> str:
        return names.get(user, f"user #{user}")

    taken = ", ".join(f"{units.short(m['units'], domain.QTY_DP)} {m['leg']} from {name(m['from'])}" for m in d["moves"])
    paid = "all its longs (bankrupt)" if d.get("bankrupt") else "its longs"
    after = f" after batch {d['after_batch']}" if d.get("after_batch") is not None else ""
    return f"{name(d['user_id'])}'s shorts closed{after} at the oracle's price: {taken or 'nothing to move'}; paid with {paid}"


def traded_notice(trade: Trade) -> str:
    """What an accept did, said to the taker where the RFQ was: the two amounts exactly as traded."""
    gave, got = units.short(trade.give_qty, domain.QTY_DP), units.short(trade.get_qty, domain.QTY_DP)
    return (
        f"Traded: gave {gave} {trade.give_leg}, got {got} {trade.get_leg} "
        f"(trade {trade.id} with {trade.maker.username}, rate {units.short(trade.rate, domain.RATE_DP)})"
    )


def event_row(event: dict[str, Any], names: dict[int, str]) -> EventRow:
    """An event's row in the floor's log from its JSON shape (`event_json`): what a push adds to the log
    without reading the event again; `names` as `floor_sql.Parties.names` gives them."""
    at = parse_at(event["at"])
    payload = event["payload"]
    if event["type"] in sealed.SEALED_TYPES:  # the floor's log is everyone's: orders still sealed stay so
        payload = sealed.Seal(domain.session_of_stream(event["stream"]) or "").payload(event["type"], payload)
    summary = summarize(event["type"], payload, names)
    return EventRow(event["seq"], event["version"], event["type"], at, summary, event["hash"][:10])


def event_log(
    session: Session, limit: int = EVENT_ROWS, before: int | None = None, parties: floor_sql.Parties | None = None
) -> list[EventRow]:
    """The newest `limit` events of the session (below seq `before`, for the next page), newest first;
    `parties` the session's participants when the caller has them (`floor_sql.Parties`)."""
    events = Event.objects.filter(stream=stream_name(session.id))
    if before is not None:
        events = events.filter(seq__lt=before)
    events = events.order_by("-seq")[:limit]
    names = (parties or floor_sql.Parties(session.id)).names()
    seal = sealed.Seal(session.id)  # the floor's log is everyone's: orders still sealed stay so
    return [
        EventRow(e.seq, e.version, e.type, e.at, summarize(e.type, seal.payload(e.type, e.data), names), e.hash[:10])
        for e in events
    ]
