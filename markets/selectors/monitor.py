"""The organiser's monitor: one row per participant (presence, holdings value and P&L, trades, open RFQs
and live quotes) and the session's totals, read in a few grouped queries per refresh.

Values and P&L are the floor's own (`holdings_and_pool`, the same Decimals at the same prices), and the
invariants are the floor's `pool.checks`. Presence is operational state (markets.models.Presence): a row
counts as connected only while its process keeps refreshing it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Sum

from markets import access
from markets.errors import Forbidden
from markets.models import RFQ, Batch, Fill, Holding, Order, Participant, Presence, Quote, Session, Trade
from markets.selectors import action_banner as corporate
from markets.selectors.common import latest_prices, q_dec, session_for
from markets.selectors.fixings import fixing_panel
from markets.selectors.floor import holdings_and_pool
from markets.selectors.margin_floor import terms as margin_terms
from markets.selectors.margin_monitor import margin_by_user, margin_totals
from markets.selectors.rejoin import way_back_kinds
from markets.selectors.sessions import is_paused, phase_context, status_note

ROLE_ORDER = {Participant.Role.ORGANISER: 0, Participant.Role.TRADER: 1, Participant.Role.MAKER: 2}


def can_monitor(session: Session, user) -> bool:
    """The session's organiser, or staff, among those who may see it at all (`markets.access`)."""
    if not access.can_view(session, user):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return Participant.objects.filter(session_id=session.id, user=user, role=Participant.Role.ORGANISER).exists()


def monitor_session(session_id: object, user) -> Session:
    """The session a monitor page names, if `user` may monitor it: NotFound / Forbidden / Unauthenticated
    as `session_for` decides for anyone who may not see it, then 403 for watchers who are not the organiser."""
    session = session_for(session_id, user)
    if not can_monitor(session, user):
        raise Forbidden(f"Only the organiser of {session.id} (or staff) can open its monitor", "not_organiser")
    return session


@dataclass
class MonitorRow:
    user_id: int
    username: str
    role: str
    connected: bool
    sockets: int
    last_seen: dt.datetime | None
    seen: str  # "now", "3 min ago", "never"
    value: Decimal | None
    pnl: Decimal | None
    taker_trades: int
    maker_trades: int
    open_rfqs: int
    live_quotes: int
    last_action: dt.datetime | None = None  # its latest RFQ, quote or trade, through a page or the API
    acted: str = "never"  # "12 s ago": a bot or a program acts without a socket
    way_back: str = "none"  # from another browser: "link" (a rejoin link), "password", "none" (selectors.rejoin)
    name: str = ""  # as people see it (the display name joined with)
    resting: int = 0  # batch auctions: resting orders (their count, never their sealed limits)
    fills: int = 0  # batch auctions: fills, one per order per batch it traded in
    reserved: list[tuple[str, Decimal]] | None = None  # what they reserve, per leg (legs reserving nothing left out)
    margin: Any = None  # bounded shorting: their `selectors.margin.MarginRow` at the latest prices
    cash: Decimal | None = None  # from corporate actions (dividends, cash in lieu), paid with the payout


def ago(then: dt.datetime | None, now: dt.datetime) -> str:
    """How long ago, in the fewest words a table cell can hold."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _counts(queryset, key: str) -> dict[int, int]:
    return {k: n for k, n in queryset.values_list(key).annotate(n=Count("id")).order_by()}


def _last_actions(session: Session) -> dict[int, dt.datetime]:
    """{participant id: when it last asked, quoted, traded or placed an order} (five grouped maxima)."""
    last: dict[int, dt.datetime] = {}
    for queryset, key, field in (
        (Order.objects.filter(session=session), "participant_id", "placed_at"),
        (RFQ.objects.filter(session=session), "taker_id", "created_at"),
        (Quote.objects.filter(rfq__session=session), "maker_id", "created_at"),
        (Trade.objects.filter(session=session), "taker_id", "executed_at"),
        (Trade.objects.filter(session=session), "maker_id", "executed_at"),
    ):
        for pid, when in queryset.values_list(key).annotate(m=Max(field)).order_by():
            if pid not in last or when > last[pid]:
                last[pid] = when
    return last


def volume_per_leg(session: Session) -> list[tuple[str, Decimal]]:
    """What changed hands of each leg: every trade moves its give quantity of one leg and its get
    quantity of another, every batch fill what it gave (exact integers, summed by the database, shown as
    Decimals)."""
    trades = Trade.objects.filter(session=session)
    moved = dict.fromkeys(session.legs, 0)
    for leg, qty in trades.values_list("give_leg").annotate(s=Sum("give_qty")).order_by():
        moved[leg] += int(qty)  # PostgreSQL sums bigints as numeric
    for leg, qty in trades.values_list("get_leg").annotate(s=Sum("get_qty")).order_by():
        moved[leg] += int(qty)
    # A batch's fills: what they gave of a leg is what the others received of it, counted once.
    fills = Fill.objects.filter(batch__session=session)
    for leg, qty in fills.values_list("give_leg").annotate(s=Sum("given")).order_by():
        moved[leg] += int(qty)
    return [(leg, q_dec(moved[leg])) for leg in session.legs]


def _orders_by_participant(session: Session) -> tuple[dict[int, int], dict[int, list], dict[int, int]]:
    """Batch auctions: {participant id: resting orders}, {participant id: [(leg, reserved)]} and {participant
    id: fills}, three grouped reads. What the organiser sees of sealed orders: how many, what they hold back."""
    if not session.trades_by_batch:
        return {}, {}, {}
    counts = _counts(Order.objects.filter(session=session, status=Order.Status.RESTING), "participant_id")
    fills = _counts(Fill.objects.filter(batch__session=session), "participant_id")
    reserved: dict[int, list[tuple[str, Decimal]]] = {}
    rows = Holding.objects.filter(session=session, reserved__gt=0).order_by("participant_id", "leg_index")
    for pid, leg, qty in rows.values_list("participant_id", "leg", "reserved"):
        reserved.setdefault(pid, []).append((leg, q_dec(qty)))
    return counts, reserved, fills


def batch_list(session: Session, limit: int = 8) -> list[dict[str, Any]]:
    """The newest batches: when, how many orders in the book, how many filled, the volume."""
    if not session.trades_by_batch:
        return []
    batches = Batch.objects.filter(session=session).order_by("-number")[:limit]
    return [
        {
            "number": b.number,
            "cut_at": b.cut_at,
            "orders": b.orders,
            "filled": b.filled,
            "volume": Decimal(b.volume),
            "cleared": b.outcome == "cleared",
            "reason": b.reason,
        }
        for b in batches
    ]


def monitor_rows(session: Session, now: dt.datetime, holdings: list, presence: dict[int, Presence]) -> list[MonitorRow]:
    """A row per participant; `holdings` are the floor's rows, `presence` the session's by user id."""
    by_user = {h.user_id: h for h in holdings}
    taker = _counts(Trade.objects.filter(session=session), "taker_id")
    maker = _counts(Trade.objects.filter(session=session), "maker_id")
    rfqs: dict[int, int] = {}
    quotes: dict[int, int] = {}
    if session.phase(now) == Session.Status.OPEN:  # from t2 on they lapsed, recorded or not yet
        rfqs = _counts(RFQ.objects.filter(session=session, status=RFQ.Status.OPEN), "taker_id")
        quotes = _counts(
            Quote.objects.filter(rfq__session=session, status=Quote.Status.LIVE, expires_at__gt=now), "maker_id"
        )
    last = _last_actions(session)
    resting, reserved, fills = _orders_by_participant(session)
    rows = []
    for p in Participant.objects.filter(session=session):
        seen = presence.get(p.user_id)
        connected = seen is not None and seen.connected_at(now)
        holding = by_user.get(p.user_id)
        rows.append(
            MonitorRow(
                user_id=p.user_id,
                username=p.username,
                role=p.role,
                connected=connected,
                sockets=seen.sockets if connected else 0,
                last_seen=seen.last_seen if seen else None,
                seen="now" if connected else ago(seen.last_seen if seen else None, now),
                value=holding.value if holding else None,
                pnl=holding.pnl if holding else None,
                taker_trades=taker.get(p.id, 0),
                maker_trades=maker.get(p.id, 0),
                open_rfqs=rfqs.get(p.id, 0),
                live_quotes=quotes.get(p.id, 0),
                last_action=last.get(p.id),
                acted=ago(last.get(p.id), now),
                name=p.display_name,
                resting=resting.get(p.id, 0),
                fills=fills.get(p.id, 0),
                reserved=reserved.get(p.id, []) if session.trades_by_batch else None,
                cash=getattr(holding, "cash", None),
            )
        )
    rows.sort(key=lambda r: (ROLE_ORDER.get(r.role, 9), r.name.casefold(), r.user_id))
    return rows


def monitor_context(session_id: str) -> dict[str, Any]:
    """Everything the monitor shows, as of now."""
    session = Session.objects.select_related("created_by").get(id=session_id)
    context = phase_context(session)
    now = context["now"]
    actions = corporate.session_actions(session, now)  # scheduled and applied, by cut
    holdings, pool = holdings_and_pool(session, latest_prices(session), actions)
    corporate.attach_cash(session.id, actions, holdings)
    presence = {p.user_id: p for p in Presence.objects.filter(session=session)}
    rows = monitor_rows(session, now, holdings, presence)
    ways = way_back_kinds(session)
    for row in rows:
        row.way_back = ways.get(row.user_id, "none")
    margins = margin_by_user(session)
    for row in rows:
        row.margin = margins.get(row.user_id)
    joined = {r.user_id for r in rows}
    watching = sum(1 for user_id, p in presence.items() if user_id not in joined and p.connected_at(now))
    roles = {role: sum(1 for r in rows if r.role == role) for role in ROLE_ORDER}
    return (
        context
        | {
            "session": session,
            "paused": is_paused(session, context["phase"]),
            "note": status_note(session, now),
            "rows": rows,
            "pool": pool,
            "totals": {
                "joined": len(rows),
                "roles": roles,
                "connected": sum(1 for r in rows if r.connected),
                "watching": watching,
                "trades": sum(r.taker_trades for r in rows),  # every trade has one taker
                "rfqs": sum(r.open_rfqs for r in rows),
                "quotes": sum(r.live_quotes for r in rows),
                **({"resting": sum(r.resting for r in rows)} if session.trades_by_batch else {}),
                **({"fills": sum(r.fills for r in rows)} if session.trades_by_batch else {}),
                **(margin_totals(margins) if session.shorting else {}),
            },
            "volume": volume_per_leg(session),
            "margin_terms": margin_terms(session) if session.shorting else "",
            "batches": batch_list(session),
            "fixing": fixing_panel(session, now),
            "actions": actions,
            "pays_cash": corporate.paid_cash(
                actions
            ),  # then each participant's cash is a column  # the rule in words; its progress, or what is missing while it waits
        }
    )
