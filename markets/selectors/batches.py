"""Batch auctions as people and programs read them: a participant's own orders (everyone's for the organiser,
staff and auditors), held / reserved / available per leg, and the batches with their fills. Who may read
what is decided here and in `selectors.sealed`, so the API, the floor and the exports agree.

Small functions, each one read; the shapes for programs are in `selectors.api`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Sum

from markets.errors import Forbidden
from markets.models import Batch, Fill, Holding, Order, Participant, Session
from markets.selectors.sealed import sees_all_orders

ORDER_STATUSES = tuple(Order.Status.values)
MAX_PAGE = 1000


def order_status(order: Order, now: dt.datetime, ends: dt.datetime | None) -> str:
    """An order as of `now`: one resting when its session's trading ended by the clock (`ends`, t2) reads
    lapsed, as the log will record it (the commands refuse it by the same rule)."""
    if order.status == Order.Status.RESTING and ends is not None and now >= ends:
        return Order.Status.LAPSED
    return order.status


def require_every_order(session: Session, user) -> None:
    """Only those who see sealed orders whole may list everyone's (`sealed.sees_all_orders`)."""
    if not sees_all_orders(session, user):
        raise Forbidden(
            "Only the session's organiser, staff and auditors see every participant's orders (sealed until their "
            "batch clears); leave out all=true for your own",
            "not_organiser",
        )


def orders_for(
    session: Session,
    user,
    *,
    everyone: bool = False,
    status: str | None = None,
    now: dt.datetime,
    after: int = 0,
    limit: int = MAX_PAGE,
) -> list[Order]:
    """`user`'s own orders in the session (`everyone`: all of them, checked), by id, after `after`, at most
    `limit`; `status` as of `now` (a resting order past t2 is lapsed)."""
    orders = Order.objects.filter(session_id=session.id, id__gt=after).select_related("participant")
    if everyone:
        require_every_order(session, user)
    else:
        orders = orders.filter(participant__user_id=user.pk)
    ends = session.trading_ends
    past_end = ends is not None and now >= ends
    if status == Order.Status.LAPSED and past_end:
        orders = orders.filter(status__in=[Order.Status.LAPSED, Order.Status.RESTING])
    elif status == Order.Status.RESTING and past_end:
        return []
    elif status is not None:
        orders = orders.filter(status=status)
    return list(orders.order_by("id")[:limit])


def received_by_order(order_ids: list[int]) -> dict[int, int]:
    """What each order has received so far, over every batch that filled it (base units of its get leg)."""
    if not order_ids:
        return {}
    rows = Fill.objects.filter(order_id__in=order_ids).values("order_id").annotate(got=Sum("received"))
    return {row["order_id"]: row["got"] for row in rows}


@dataclass
class HolderPosition:
    """One holder's legs: held (x), reserved by resting orders, available (held - reserved)."""

    user_id: int
    username: str
    name: str
    role: str
    held: list[int] = field(default_factory=list)
    reserved: list[int] = field(default_factory=list)
    resting: int = 0

    @property
    def available(self) -> list[int]:
        return [h - r for h, r in zip(self.held, self.reserved, strict=True)]


def positions_for(session: Session, user, *, everyone: bool = False) -> list[HolderPosition]:
    """`user`'s own held / reserved / available per leg (none when they hold nothing here); `everyone`:
    every holder's, for those who see every order (a holder's reservations add up its sealed orders)."""
    holdings = Holding.objects.filter(session_id=session.id).select_related("participant")
    resting = Order.objects.filter(session_id=session.id, status=Order.Status.RESTING)
    if everyone:
        require_every_order(session, user)
    else:
        holdings = holdings.filter(participant__user_id=user.pk)
        resting = resting.filter(participant__user_id=user.pk)
    counts = dict(resting.values("participant_id").annotate(n=Count("id")).values_list("participant_id", "n"))
    rows: dict[int, HolderPosition] = {}
    for h in holdings.order_by("participant__username", "participant__user_id", "leg_index"):
        p: Participant = h.participant
        row = rows.get(p.id)
        if row is None:
            row = rows[p.id] = HolderPosition(
                p.user_id, p.username, p.display_name, p.role, resting=counts.get(p.id, 0)
            )
        row.held.append(h.qty)
        row.reserved.append(h.reserved)
    return list(rows.values())


def batches_of(session: Session, *, after: int = 0, limit: int = 100) -> list[Batch]:
    """The session's recorded batches numbered after `after`, oldest first, at most `limit`."""
    return list(Batch.objects.filter(session_id=session.id, number__gt=after).order_by("number")[:limit])


def fills_of(batches: list[Batch], user=None) -> dict[int, list[Fill]]:
    """The fills of these batches, by batch id, in order id order (public once a batch cleared: that is what
    clearing reveals); `user`: only theirs."""
    fills = Fill.objects.filter(batch_id__in=[b.id for b in batches]).select_related("participant")
    if user is not None:
        fills = fills.filter(participant__user_id=user.pk)
    found: dict[int, list[Fill]] = {b.id: [] for b in batches}
    for f in fills.order_by("batch_id", "order_id"):
        found[f.batch_id].append(f)
    return found
