"""The one code path from events to read models, used live (inside the command's transaction) and by
replay (`rebuild`). If it is not derived here, it is not in the projection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from django.contrib.auth import get_user_model

from ledger.models import Event
from markets import domain, floor_sql, sql
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Settlement

HANDLERS: dict[str, Callable[[Event, dict[str, Any]], None]] = {}
# Events projected by plain statements that read no row count back: pipelined with the stamp (sql.pipelined)
PLAIN: set[str] = set()


def handles(event_type: str, *, plain: bool = False):
    def register(fn):
        HANDLERS[event_type] = fn
        if plain:
            PLAIN.add(event_type)
        return fn

    return register


def session_id_of(stream: str) -> str:
    return domain.session_of_stream(stream) or stream


def apply(event: Event) -> None:
    """Apply one event to the read models and stamp the session with its version and seq."""
    if (handler := HANDLERS.get(event.type)) is None:
        raise ValueError(f"no projection for event type {event.type}")
    with sql.pipelined() if event.type in PLAIN else nullcontext():
        handler(event, event.data)
        sql.stamp(session_id_of(event.stream), event.version, event.seq)


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text)


class LegacyNameError(ValueError):
    """A log written before participants were named by id names a user who no longer has that name."""


def _user_by_legacy_name(username: str) -> int:
    """Logs written before schema 2 name people by username: resolve the name against the accounts as
    they are now (so renaming such a user breaks its replay; verify_ledger then says so)."""
    user_id = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
    if user_id is None:
        raise LegacyNameError(
            f"this old event names user {username!r}, and no account has that name now (renamed or deleted?)"
        )
    return user_id


def _participant_id(session_id: str, d: dict[str, Any], side: str) -> int:
    """The participant row an event's `<side>_id` (a user id) names, or its legacy `<side>` username."""
    if f"{side}_id" in d:
        if (found := sql.participant_id(session_id, d[f"{side}_id"])) is None:
            raise Participant.DoesNotExist(f"user {d[f'{side}_id']} has not joined session {session_id}")
        return found
    return Participant.objects.values_list("id", flat=True).get(session_id=session_id, username=d[side])


def session_from_created(d: dict[str, Any], created_by_id: int, at: dt.datetime) -> Session:
    """The Session row a SessionCreated payload describes (unsaved; bulk loaders reuse it)."""
    return Session(
        id=d["session_id"],
        title=d.get("title", ""),
        legs=d["legs"],
        q=d["q"],
        t1=_parse_at(d.get("t1")),
        t2=_parse_at(d.get("t2")),
        start_mode=d["start_mode"],
        end_mode=d["end_mode"],
        allocation_mode=d["allocation_mode"],
        fixing_rule=d["fixing_rule"],
        visibility=d.get("visibility", Session.Visibility.PUBLIC),  # logs before the setting: public
        **batch_fields(d),
        **margin_fields(d),
        status=Session.Status.CREATED,
        created_by_id=created_by_id,
        created_at=at,
    )


def created_by_id(d: dict[str, Any]) -> int:
    return d["created_by_id"] if "created_by_id" in d else _user_by_legacy_name(d["created_by"])


@handles("SessionCreated")
def _session_created(event: Event, d: dict[str, Any]) -> None:
    session_from_created(d, created_by_id(d), event.at).save(force_insert=True)


@handles("ParticipantJoined")
def _participant_joined(event: Event, d: dict[str, Any]) -> None:
    Participant.objects.create(
        session_id=session_id_of(event.stream),
        user_id=d["user_id"] if "user_id" in d else _user_by_legacy_name(d["username"]),
        username=d["username"],
        display_name=d.get("name") or d["username"],  # logs before names were recorded: the username
        role=d["role"],
        joined_at=event.at,
    )


def allocation_by_user(session_id: str, d: dict[str, Any]) -> dict[int, list[int]]:
    """An InitialAllocationAssigned payload as {user id: row}; legacy payloads name holders by username."""
    if "holdings_by_id" in d:
        return {int(u): row for u, row in d["holdings_by_id"].items()}
    ids = dict(Participant.objects.filter(session_id=session_id).values_list("username", "user_id"))
    return {ids[name]: row for name, row in d["holdings"].items()}


@handles("InitialAllocationAssigned")
def _initial_allocation(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(allocation_mode=d["mode"])
    legs = Session.objects.values_list("legs", flat=True).get(id=session_id)
    participants = dict(Participant.objects.filter(session_id=session_id).values_list("user_id", "id"))
    Holding.objects.bulk_create(
        Holding(
            session_id=session_id,
            participant_id=participants[user_id],
            leg=leg,
            leg_index=k,
            qty=row[k],
            initial=row[k],
        )
        for user_id, row in sorted(allocation_by_user(session_id, d).items())
        for k, leg in enumerate(legs)
    )


@handles("SessionOpened")
def _session_opened(event: Event, d: dict[str, Any]) -> None:
    Session.objects.filter(id=session_id_of(event.stream)).update(status=Session.Status.OPEN, opened_at=event.at)
    projections_batch.on_open(session_id_of(event.stream), event.at)


@handles("SessionCancelled")
def _session_cancelled(event: Event, d: dict[str, Any]) -> None:
    Session.objects.filter(id=session_id_of(event.stream)).update(
        status=Session.Status.CANCELLED, waiting_reason=d["reason"]
    )


@handles("RFQRequested", plain=True)
def _rfq_requested(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    sql.insert(
        RFQ(
            id=d["rfq_id"],
            session_id=session_id,
            taker_id=_participant_id(session_id, d, "taker"),
            give_leg=d["give_leg"],
            get_leg=d["get_leg"],
            quantity=d["quantity"],
            status=RFQ.Status.OPEN,
            created_at=event.at,
        )
    )


@handles("QuoteProvided", plain=True)
def _quote_provided(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    sql.insert(
        Quote(
            id=d["quote_id"],
            rfq_id=d["rfq_id"],
            maker_id=_participant_id(session_id, d, "maker"),
            rate=d["rate"],
            expires_at=_parse_at(d["expires_at"]),
            status=Quote.Status.LIVE,
            created_at=event.at,
        )
    )


@handles("QuotesExpired")
def _quotes_expired(event: Event, d: dict[str, Any]) -> None:
    Quote.objects.filter(id__in=d["quote_ids"], status=Quote.Status.LIVE).update(status=Quote.Status.EXPIRED)


@handles("QuoteWithdrawn")
def _quote_withdrawn(event: Event, d: dict[str, Any]) -> None:
    Quote.objects.filter(id=d["quote_id"]).update(status=Quote.Status.WITHDRAWN)


# Closing an RFQ and executing a trade are on the trade path: plain statements (markets.sql), not ORM
# queries. Replay runs exactly this code too.


@handles("RFQCancelled", plain=True)
def _rfq_cancelled(event: Event, d: dict[str, Any]) -> None:
    sql.close_rfq(d["rfq_id"], RFQ.Status.CANCELLED, event.at)


@handles("TradeExecuted", plain=True)
def _trade_executed(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    legacy = "taker_id" not in d  # a log written before participants were named by id
    who = (d["taker"], d["maker"]) if legacy else (d["taker_id"], d["maker_id"])
    ids = sql.participant_rows(session_id, who, by_name=legacy)
    taker, maker = ids[who[0]], ids[who[1]]
    sql.move_holdings(
        (delta, participant, k)
        for participant, deltas in ((taker, d["taker_deltas"]), (maker, d["maker_deltas"]))
        for k, delta in enumerate(deltas)
        if delta
    )
    sql.close_rfq(d["rfq_id"], RFQ.Status.FILLED, event.at, filled_quote=d["quote_id"])
    sql.insert_trade(
        (d["trade_id"], session_id, d["rfq_id"], d["quote_id"], taker, maker, d["give_leg"], d["get_leg"],
         d["give_qty"], d["get_qty"], d["rate"], event.at, event.seq)
    )  # fmt: skip


def _lapse_open(session_id: str, at: dt.datetime) -> None:
    """Trading is over: every open RFQ of the session lapses, and so does every live quote and resting order."""
    Quote.objects.filter(rfq__session_id=session_id, status=Quote.Status.LIVE).update(status=Quote.Status.LAPSED)
    RFQ.objects.filter(session_id=session_id, status=RFQ.Status.OPEN).update(status=RFQ.Status.LAPSED, closed_at=at)
    projections_batch.lapse_orders(session_id, at)


@handles("TradingClosed")
def _trading_closed(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(status=Session.Status.CLOSED, closed_at=_parse_at(d["at"]))
    _lapse_open(session_id, event.at)


@handles("TradingPaused")
@handles("TradingResumed")
def _pause(event: Event, d: dict[str, Any]) -> None:
    """The organiser's pause is the session row's `paused_at` (and why); resuming clears both."""
    paused = event.type == "TradingPaused"
    Session.objects.filter(id=session_id_of(event.stream)).update(
        paused_at=event.at if paused else None, pause_reason=d.get("reason", "") if paused else ""
    )


@handles("SettlementWaiting")
def _settlement_waiting(event: Event, d: dict[str, Any]) -> None:
    Session.objects.filter(id=session_id_of(event.stream)).update(waiting_reason=d["reason"])


def payouts_by_user(session_id: str, d: dict[str, Any]) -> dict[int, str]:
    """A SessionSettled payload's payouts as {user id: amount}; legacy payloads name holders by username."""
    if "payouts_by_id" in d:
        return {int(u): amount for u, amount in d["payouts_by_id"].items()}
    ids = dict(Participant.objects.filter(session_id=session_id).values_list("username", "user_id"))
    return {ids[name]: amount for name, amount in d["payouts"].items()}


@handles("SessionSettled")
def _session_settled(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(status=Session.Status.SETTLED, settled_at=event.at, waiting_reason="")
    _lapse_open(session_id, event.at)
    Settlement.objects.create(
        session_id=session_id,
        prices=d["prices"],
        fixing=d["fixing"],
        total=d["total"],
        expected=d["expected"],
        deficit=d["haircut"]["deficit"] if "haircut" in d else "",
        settled_at=event.at,
        seq=event.seq,
    )
    participants = dict(Participant.objects.filter(session_id=session_id).values_list("user_id", "id"))
    gross = d["haircut"]["gross_by_id"] if "haircut" in d else {}
    Payout.objects.bulk_create(
        Payout(session_id=session_id, participant_id=participants[u], amount=amount, gross=gross.get(str(u), ""))
        for u, amount in sorted(payouts_by_user(session_id, d).items())
    )


def initial_by_user(session_id: str) -> dict[int, list[int]]:
    """{user id: [initial x_k, ...]}: each holder's opening allocation, as corporate actions carried it."""
    out: dict[int, list[int]] = {}
    rows = Holding.objects.filter(session_id=session_id).order_by("participant__user_id", "leg_index")
    for user, first in rows.values_list("participant__user_id", "initial"):
        out.setdefault(user, []).append(first)
    return out


def holdings_by_user(session_id: str) -> dict[int, list[int]]:
    """{user id: [x_k ...]} from the projection, in leg order: who holds what, by immutable id."""
    matrix: dict[int, list[int]] = {}
    holdings = Holding.objects.filter(session_id=session_id).order_by("participant__user_id", "leg_index")
    for who, qty in holdings.values_list("participant__user_id", "qty"):
        matrix.setdefault(who, []).append(qty)
    return matrix


def holdings_matrix(session_id: str) -> dict[str, list[int]]:
    """{name: [x_k ...]} from the projection, in leg order, named as the participants joined (display)."""
    return floor_sql.holdings_by_name(session_id)  # one hand-written statement: the JSON stream reads it per batch


# Registers the batch auctions' and bounded shorting's handlers (which import these).
from markets import projections_actions, projections_batch, projections_margin  # noqa: E402, F401
from markets.projections_batch import batch_fields  # noqa: E402
from markets.projections_margin import margin_fields  # noqa: E402
from markets.replay import ReplayError, diff, rebuild, snapshot  # noqa: E402, F401 (projections.rebuild, as ever)
