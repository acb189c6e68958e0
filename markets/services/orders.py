"""Limit orders of batch sessions: place (reserving what the order may give) and cancel (until the cut).
Each is one command in the house's envelope; the rules are `markets.domain.orders`."""

from __future__ import annotations

from markets import domain, sql
from markets.domain import orders as rules
from markets.errors import Conflict, DomainError, Forbidden, NotFound
from markets.models import Holding, Order, Session
from markets.services import margin
from markets.services.command import (
    _command,
    _participant,
    _require_trading,
    _require_unpaused,
    _require_user,
    _retrying,
    _row_id,
)


def _require_batch(session: Session) -> None:
    if not session.trades_by_batch:
        raise Conflict(
            f"Session {session.id} trades by RFQ only: ask for quotes instead of placing an order", "not_batch"
        )


@_retrying
def place_order(
    actor,
    session_id: str,
    give_leg: str,
    get_leg: str,
    quantity: object,
    limit_rate: object,
    *,
    good_for: object = None,
    gtc: object = False,
) -> Order:
    """A participant offers to give up to `quantity` of give_leg for get_leg at `limit_rate` (units of the
    get leg per unit given) or better, for one batch, `good_for` N batches or until cancelled (`gtc`). What
    it may give is reserved now: it must be available (held - reserved by the orders already resting)."""
    _require_user(actor)
    qty = domain.parse_qty(quantity)
    limit = domain.parse_rate(limit_rate, "The limit rate")
    batches = rules.lifetime(good_for, gtc)
    with _command(session_id) as cmd:
        session = cmd.session
        if actor is None:
            raise Forbidden("Orders are placed by a participant", "forbidden")
        me = _participant(session, actor)
        gi = domain.leg_index(session.legs, give_leg)
        ge = domain.leg_index(session.legs, get_leg)
        if gi == ge:
            raise DomainError("The give leg and the get leg must differ", "same_leg")
        if not me.holds:
            raise Forbidden("Only traders and makers place orders", "forbidden")
        _require_batch(session)
        _require_trading(session, cmd.now)
        _require_unpaused(session)
        held, reserved = Holding.objects.filter(participant=me, leg_index=gi).values_list(
            "qty", "reserved"
        ).first() or (0, 0)
        rules.check_order(
            quantity=qty,
            held=held,
            reserved=reserved,
            min_order=session.min_order,
            resting=Order.objects.filter(participant=me, status=Order.Status.RESTING).count(),
            max_orders=session.max_orders,
            leg=session.legs[gi],
            short_room=margin.room(session)[gi],
        )
        if session.shorting:  # as if the order filled whole at its limit now (each fill is checked again)
            change = [0] * len(session.legs)
            change[gi], change[ge] = -qty, domain.trade_receive(qty, limit)
            margin.check_moves(cmd, {me.user_id: change}, me=me.user_id)
        order_id = sql.next_id(Order)
        cmd.emit(
            "OrderPlaced",
            {
                "order_id": order_id,
                "user_id": me.user_id,
                "give_leg": session.legs[gi],
                "get_leg": session.legs[ge],
                "quantity": qty,
                "limit_rate": limit,
                "batches": batches,
            },
        )
    return Order.objects.select_related("participant").get(id=order_id)


def _order(order_id: object) -> Order:
    number = _row_id(order_id, "order", "order_not_found")
    order = Order.objects.filter(id=number).first()
    if order is None:
        raise NotFound(f"Unknown order {str(order_id)[:20]!r}", "order_not_found")
    return order


@_retrying
def cancel_order(actor, order_id: object) -> Order:
    """The order's owner takes it off the book and frees what it reserved, until the cut that holds it:
    from the instant of its batch's cut the order belongs to that batch (which is clearing), whatever the
    scheduler has recorded yet (while trading is paused nothing clears, so it may)."""
    _require_user(actor)
    found = _order(order_id)
    with _command(found.session_id) as cmd:
        order = _order(order_id)  # under the session's lock: as it stands now
        session = cmd.session
        if actor is None:
            raise Forbidden("Orders are cancelled by their owner", "forbidden")
        me = _participant(session, actor)
        if order.participant_id != me.id:
            raise Forbidden("Only the order's owner can cancel it", "not_your_order")
        if order.status != Order.Status.RESTING:
            raise Conflict(f"Order {order.id} is {order.status}: there is nothing to cancel", "order_closed")
        _require_trading(session, cmd.now)  # from t2 on it lapses with trading, as a quote does
        cut = session.next_cut_at
        if cut is not None and order.placed_at < cut <= cmd.now and session.paused_at is None:
            raise Conflict(
                f"Order {order.id} is in the batch cut at {domain.when(cut)}, clearing now: it can no longer be "
                "cancelled",
                "batch_cut",
            )
        cmd.emit("OrderCancelled", {"order_id": order.id, "user_id": me.user_id})
    return Order.objects.get(id=order.id)
