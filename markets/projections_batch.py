"""Batch auctions in the one projection (`markets.projections`): OrderPlaced, OrderCancelled and
BatchCleared into orders, reservations, batches, fills and holdings, live and in replay, by the same code.
Registered in `projections.HANDLERS` when `markets.projections` loads (it imports this module last)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ledger.models import Event
from markets import batch_sql
from markets.domain import orders as rules
from markets.models import Batch, Fill, Order, Participant, Session
from markets.projections import _participant_id, handles, session_id_of


def batch_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A SessionCreated payload's mechanism and batch settings, as Session fields (old logs: RFQ only)."""
    settings = rules.settings_of(d)
    return {
        "mechanism": settings.mechanism,
        "batch_seconds": settings.seconds,
        "batch_band": settings.band,
        "max_orders": settings.max_orders,
        "min_order": settings.min_order,
    }


def on_open(session_id: str, at: dt.datetime) -> None:
    """SessionOpened: a batch session's first cut is one period after the opening."""
    seconds = Session.objects.filter(id=session_id).values_list("batch_seconds", flat=True).first()
    if seconds:
        Session.objects.filter(id=session_id).update(next_cut_at=at + dt.timedelta(seconds=seconds))


def lapse_orders(session_id: str, at: dt.datetime) -> None:
    """Trading ended (t2, the settlement): every resting order lapses and frees what it reserved."""
    resting = list(
        Order.objects.filter(session_id=session_id, status=Order.Status.RESTING).values_list(
            "participant_id", "give_leg", "rest"
        )
    )
    if not resting:
        Session.objects.filter(id=session_id).update(next_cut_at=None)
        return
    batch_sql.release(session_id, resting)
    Order.objects.filter(session_id=session_id, status=Order.Status.RESTING).update(
        status=Order.Status.LAPSED, closed_at=at
    )
    Session.objects.filter(id=session_id).update(next_cut_at=None)


@handles("OrderPlaced")
def _order_placed(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    participant = _participant_id(session_id, d, "user")
    batch_sql.reserve(participant, d["give_leg"], d["quantity"])
    Order.objects.create(
        id=d["order_id"],
        session_id=session_id,
        participant_id=participant,
        give_leg=d["give_leg"],
        get_leg=d["get_leg"],
        quantity=d["quantity"],
        rest=d["quantity"],
        limit_rate=d["limit_rate"],
        batches_left=d["batches"],
        status=Order.Status.RESTING,
        placed_at=event.at,
        seq=event.seq,
    )


@handles("OrderCancelled")
def _order_cancelled(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    order = Order.objects.get(id=d["order_id"], session_id=session_id)
    batch_sql.release(session_id, [(order.participant_id, order.give_leg, order.rest)])
    Order.objects.filter(id=order.id).update(status=Order.Status.CANCELLED, closed_at=event.at)


@handles("BatchCleared")
def _batch_cleared(event: Event, d: dict[str, Any]) -> None:
    """A cut: its record, the fills moving holdings and freeing what they gave from the reservations,
    and every order of its book one batch older (filled, expired or resting on)."""
    session_id = session_id_of(event.stream)
    result = d["result"]
    cleared = result["result"] == "cleared"
    fills = result.get("fills", []) if cleared else []
    batch = Batch.objects.create(
        session_id=session_id,
        number=d["batch"],
        cut_at=dt.datetime.fromisoformat(d["cut_at"]),
        outcome="cleared" if cleared else "none",
        reason="" if cleared else result.get("message", result.get("reason", "")),
        reference=d["reference"],
        ticks=d["ticks"],
        prices=dict(zip(d["legs"], result["prices"], strict=True)) if cleared else {},
        volume=d["volume"],
        orders=len(d["orders"]),
        filled=len(fills),
        seq=event.seq,
    )
    batch_sql.apply_cut(session_id, batch.id, d["legs"], d["orders"], fills, event.at)
    # Liquidated participants whose buy-back orders were in this batch wait no more (bounded shorting).
    Participant.objects.filter(session_id=session_id, liquidation_pending=True, orders__id__in=d["orders"]).update(
        liquidation_pending=False
    )
    Session.objects.filter(id=session_id).update(
        batches=d["batch"], next_cut_at=dt.datetime.fromisoformat(d["next_cut_at"]) if d["next_cut_at"] else None
    )


def snapshot(session_id: str) -> dict[str, Any]:
    """The batch auctions' read models of a session, as `projections.snapshot` compares them (participants
    by user id: their row ids are not part of the log)."""
    fields = [f.attname for f in Order._meta.concrete_fields if f.name != "participant"]
    return {
        "orders": list(
            Order.objects.filter(session_id=session_id).order_by("id").values(*fields, "participant__user_id")
        ),
        "batches": list(
            Batch.objects.filter(session_id=session_id)
            .order_by("number")
            .values(
                "number",
                "cut_at",
                "outcome",
                "reason",
                "reference",
                "ticks",
                "prices",
                "volume",
                "orders",
                "filled",
                "seq",
            )
        ),
        "fills": list(
            Fill.objects.filter(batch__session_id=session_id)
            .order_by("batch__number", "order_id")
            .values_list("batch__number", "order_id", "participant__user_id", "given", "received", "rest")
        ),
    }
