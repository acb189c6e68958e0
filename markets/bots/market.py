"""What the bots read of a session, as the plain `policy.Market` their decisions take: open RFQs and the
quotes live on them, sorted by id, the latest oracle prices, the bots' holdings (what each may give: held
less what its resting orders reserve) and, in a session with batch auctions, the bots' own resting orders,
the anti-spam settings and the next cut. Read-only: every change goes through the services
(`markets.bots.crew`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import F, Max, Sum

from markets.bots.policy import Market, OrderView, QuoteView, RfqView
from markets.models import RFQ, Holding, Order, Participant, Quote, Session
from markets.selectors.common import latest_prices
from markets.selectors.prices import splits_of
from oracle import fixing


def read_market(session: Session, bots: Iterable[str], now: dt.datetime) -> Market:
    """The session as it stands: quotes count as live while their status is live and `now` is before
    their expiry (what the services decide by, too)."""
    rfqs = tuple(
        RfqView(r.id, r.taker.username, r.give_leg, r.get_leg, r.quantity, r.created_at)
        for r in RFQ.objects.filter(session=session, status=RFQ.Status.OPEN).select_related("taker").order_by("id")
    )
    quotes = tuple(
        QuoteView(q.id, q.rfq_id, q.maker.username, q.rate, q.expires_at)
        for q in Quote.objects.filter(
            rfq__session=session, rfq__status=RFQ.Status.OPEN, status=Quote.Status.LIVE, expires_at__gt=now
        )
        .select_related("maker")
        .order_by("id")
    )
    names = list(bots)
    holdings: dict[str, dict[str, int]] = {name: {} for name in names}
    initial: dict[str, dict[str, int]] = {name: {} for name in names}
    rows = Holding.objects.filter(session=session, participant__username__in=names).values_list(
        "participant__username", "leg", F("qty") - F("reserved"), "initial"
    )
    for name, leg, qty, first in rows:
        holdings[name][leg] = qty
        initial[name][leg] = first
    deliverable = dict(
        Holding.objects.filter(session=session, participant__role=Participant.Role.MAKER)
        .values("leg")
        .annotate(most=Max(F("qty") - F("reserved")))
        .values_list("leg", "most")
    )
    orders: tuple[OrderView, ...] = ()
    if session.trades_by_batch:
        orders = tuple(
            OrderView(o.id, o.participant.username, o.give_leg, o.get_leg, o.rest, o.limit_rate, o.placed_at)
            for o in Order.objects.filter(session=session, status=Order.Status.RESTING, participant__username__in=names)
            .select_related("participant")
            .order_by("id")
        )
    caps: dict[str, int] = {}
    gross: dict[str, int] = {}
    if session.shorting:  # bounded shorting: each leg's limit (the pool's cap too) and what the pool is short
        caps = dict(zip(session.legs, session.margin.caps(session.q), strict=True))
        gross = {
            leg: -short
            for leg, short in Holding.objects.filter(session=session, qty__lt=0)
            .values("leg")
            .annotate(short=Sum("qty"))
            .values_list("leg", "short")
        }
    return Market(
        tuple(session.legs),
        latest_prices(session),
        rfqs,
        quotes,
        holdings,
        initial,
        deliverable,
        mechanism=session.mechanism,
        orders=orders,
        max_orders=session.max_orders or 0,
        min_order=session.min_order or 0,
        next_cut=session.next_cut_at,
        short_caps=caps,
        gross_short=gross,
        margin=session.margin,
        fixing=fixing_so_far(session, now),
    )


def fixing_so_far(session: Session, now: dt.datetime) -> dict[str, int]:
    """Inside a timed session's fixing window (its rule other than `last`): what the rule would make of each
    leg from the ticks so far (`oracle.fixing.progress`); empty before the window or when none can yet."""
    rule = session.fixing_rule or {"rule": "last"}
    if session.t2 is None or session.end_mode != Session.EndMode.TIMED or rule.get("rule", "last") == "last":
        return {}
    before, _after = fixing.reach(fixing.validate_rule(rule))
    if now < session.t2 - dt.timedelta(seconds=before):
        return {}
    rows = fixing.progress(session.id, session.legs, rule, session.t2, now, splits=splits_of(session))
    return {row["leg"]: row["value"] for row in rows if row["value"] is not None}
