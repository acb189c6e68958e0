"""Read queries shaped for pages, pushes, the API and commands. No writes here.

Numbers stay exact: quantities and prices are Decimals made from the stored integers; values are
x . S computed in integers and only then turned into Decimals for display.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q

from ledger import clock
from ledger.models import Event
from markets import access, domain
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Trade, stream_name
from oracle import units
from oracle.models import Tick

SPARK_POINTS = 120
BLOTTER_ROWS = 25
EVENT_ROWS = 25


def q_dec(base: int) -> Decimal:
    return domain.to_decimal(base, domain.QTY_DP)


def money_dec(base: int) -> Decimal:
    return domain.to_decimal(base, domain.MONEY_DP)


def latest_prices(session: Session) -> dict[str, int]:
    """Latest tick price per leg (base units); legs without a tick are absent."""
    prices = {}
    for leg in session.legs:
        tick = (
            Tick.objects.filter(session_id=session.id, symbol=leg)
            .order_by("-at", "-id")
            .values_list("price", flat=True)
            .first()
        )
        if tick is not None:
            prices[leg] = tick
    return prices


def price_vector(session: Session, prices: dict[str, int]) -> list[int] | None:
    if all(leg in prices for leg in session.legs):
        return [prices[leg] for leg in session.legs]
    return None


@dataclass
class SessionRow:
    session: Session
    participants: int
    pool_value: Decimal | None
    last_tick: dt.datetime | None
    phase: str = ""
    phase_label: str = ""
    note: str = ""


def session_rows(user) -> list[SessionRow]:
    """The sessions `user` may see (`markets.access`), newest first, with where each stands."""
    sessions = list(
        access.visible_sessions(user)
        .annotate(n=Count("participants"))
        .select_related("settlement")
        .order_by("-created_at")
    )
    now = clock.now()
    rows = []
    for s in sessions:
        settlement = getattr(s, "settlement", None) if s.status == Session.Status.SETTLED else None
        # A settled session is worth what it paid out: q . S_t2, not q at whatever ticked afterwards.
        vec = [settlement.prices[leg] for leg in s.legs] if settlement else price_vector(s, latest_prices(s))
        last = Tick.objects.filter(session_id=s.id).aggregate(m=Max("at"))["m"]
        phase = s.phase(now)
        rows.append(
            SessionRow(
                s,
                s.n,
                money_dec(domain.payout(s.q, vec)) if vec else None,
                last,
                phase,
                PHASE_LABELS[phase],
                status_note(s, now),
            )
        )
    return rows


@dataclass
class LegView:
    symbol: str
    q: Decimal
    price: Decimal | None
    change: Decimal | None
    change_pct: Decimal | None
    spark: str  # SVG polyline points
    spark_min: Decimal | None = None
    spark_max: Decimal | None = None


def _spark(prices: list[int], width: int = 160, height: int = 36) -> tuple[str, int | None, int | None]:
    if len(prices) < 2:
        return "", None, None
    lo, hi = min(prices), max(prices)
    span = hi - lo or 1
    step = width / (len(prices) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (p - lo) * (height - 4) / span:.1f}" for i, p in enumerate(prices))
    return pts, lo, hi


def recent_prices(session: Session) -> dict[str, list[int]]:
    """The last SPARK_POINTS prices of each leg, oldest first; the last one is the latest price."""
    history = {}
    for leg in session.legs:
        history[leg] = list(
            Tick.objects.filter(session_id=session.id, symbol=leg)
            .order_by("-at", "-id")
            .values_list("price", flat=True)[:SPARK_POINTS]
        )[::-1]
    return history


def leg_views(session: Session, history: dict[str, list[int]]) -> list[LegView]:
    views = []
    since = session.opened_at or session.created_at
    for k, leg in enumerate(session.legs):
        recent = history[leg]
        first = (
            Tick.objects.filter(session_id=session.id, symbol=leg, at__gte=since)
            .order_by("at", "id")
            .values_list("price", flat=True)
            .first()
        )
        price = recent[-1] if recent else None
        change = change_pct = None
        if price is not None and first:
            change = domain.to_decimal(price - first, domain.PRICE_DP)
            change_pct = (Decimal(price - first) * 100 / Decimal(first)).quantize(Decimal("0.01"))
        pts, lo, hi = _spark(recent)
        views.append(
            LegView(
                symbol=leg,
                q=q_dec(session.q[k]),
                price=domain.to_decimal(price, domain.PRICE_DP) if price is not None else None,
                change=change,
                change_pct=change_pct,
                spark=pts,
                spark_min=domain.to_decimal(lo, domain.PRICE_DP) if lo is not None else None,
                spark_max=domain.to_decimal(hi, domain.PRICE_DP) if hi is not None else None,
            )
        )
    return views


@dataclass
class HoldingRow:
    username: str
    role: str
    qty: list[Decimal]
    value: Decimal | None
    pnl: Decimal | None
    payout: str | None = None


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    pending: bool = False  # nothing to check yet (not allocated, no prices)


@dataclass
class Pool:
    q: list[Decimal]
    value: Decimal | None
    checks: list[Check] = field(default_factory=list)


def holdings_and_pool(session: Session, prices: dict[str, int]) -> tuple[list[HoldingRow], Pool]:
    vec = price_vector(session, prices)
    settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
    if settlement is not None:
        vec = [settlement.prices[leg] for leg in session.legs]
    rows_by_user: dict[str, dict[str, Any]] = {}
    participants = {p.username: p.role for p in Participant.objects.filter(session=session)}
    for username, k, qty, initial in (
        Holding.objects.filter(session=session)
        .order_by("participant__username", "leg_index")
        .values_list("participant__username", "leg_index", "qty", "initial")
    ):
        row = rows_by_user.setdefault(username, {"qty": [0] * len(session.legs), "initial": [0] * len(session.legs)})
        row["qty"][k] = qty
        row["initial"][k] = initial
    payouts = dict(Payout.objects.filter(session=session).values_list("participant__username", "amount"))
    rows = []
    matrix = {u: r["qty"] for u, r in rows_by_user.items()}
    for username, r in sorted(rows_by_user.items()):
        value = pnl = None
        if vec is not None:
            value_base = domain.payout(r["qty"], vec)
            value = money_dec(value_base)
            pnl = money_dec(value_base - domain.payout(r["initial"], vec))
        rows.append(
            HoldingRow(
                username,
                participants.get(username, ""),
                [q_dec(x) for x in r["qty"]],
                value,
                pnl,
                payouts.get(username),
            )
        )
    pool = Pool(q=[q_dec(x) for x in session.q], value=money_dec(domain.payout(session.q, vec)) if vec else None)
    initial = {u: r["initial"] for u, r in rows_by_user.items()}
    pool.checks = _checks(session, matrix, initial, vec, settlement)
    return rows, pool


def _checks(
    session: Session, matrix: dict[str, list[int]], initial: dict[str, list[int]], vec: list[int] | None, settlement
) -> list[Check]:
    n = len(session.legs)
    if not matrix:
        return [
            Check("1 Conservation", True, "not allocated yet", pending=True),
            Check("2 No negative holding", True, "not allocated yet", pending=True),
            Check("3 Zero-sum trades", True, "no trades", pending=True),
            Check("4 Settlement sum", True, "not settled", pending=True),
        ]
    sums = [sum(row[k] for row in matrix.values()) for k in range(n)]
    conserved = sums == list(session.q)
    low = min(min(row) for row in matrix.values())
    trades = Trade.objects.filter(session=session).count()
    net = [sum(matrix[u][k] - initial[u][k] for u in matrix) for k in range(n)]
    checks = [
        Check(
            "1 Conservation",
            conserved,
            "Σx = q on every leg"
            if conserved
            else "Σx ≠ q on " + ", ".join(session.legs[k] for k in range(n) if sums[k] != session.q[k]),
        ),
        Check("2 No negative holding", low >= 0, f"min x = {domain.qty_str(low)}"),
        Check(
            "3 Zero-sum trades", all(v == 0 for v in net), f"{trades} trades, ΣΔx = 0" if not any(net) else "ΣΔx ≠ 0"
        ),
    ]
    if settlement is not None:
        ok = settlement.total == settlement.expected
        checks.append(Check("4 Settlement sum", ok, f"Σ payouts = q·S = {Decimal(settlement.total):,.2f}"))
    elif vec is not None:
        total = sum(domain.payout(row, vec) for row in matrix.values())
        expected = domain.payout(session.q, vec)
        checks.append(
            Check("4 Settlement sum", total == expected, f"at latest prices Σ x·S = q·S = {money_dec(expected):,.2f}")
        )
    else:
        checks.append(Check("4 Settlement sum", True, "waiting for prices", pending=True))
    return checks


def board_data(session: Session) -> list[dict[str, Any]]:
    """Open RFQs with their live quotes, as plain data (rendered per viewer by the push)."""
    now = clock.now()
    rfqs = list(RFQ.objects.filter(session=session, status=RFQ.Status.OPEN).select_related("taker").order_by("-id"))
    quotes: dict[int, list[dict[str, Any]]] = {}
    for quote in (
        Quote.objects.filter(rfq__in=[r.id for r in rfqs], status=Quote.Status.LIVE)
        .select_related("maker")
        .order_by("rate", "id")
    ):
        rfq = next(r for r in rfqs if r.id == quote.rfq_id)
        quotes.setdefault(quote.rfq_id, []).append(
            {
                "id": quote.id,
                "key": f"quote-{quote.id}",
                "maker": quote.maker.username,
                "maker_id": quote.maker_id,
                "rate": domain.to_decimal(quote.rate, domain.RATE_DP),
                "receive": q_dec(domain.trade_receive(rfq.quantity, quote.rate)),
                "expires_at": quote.expires_at,
                "expires_ms": int(quote.expires_at.timestamp() * 1000),
                "expired": quote.expires_at <= now,
            }
        )
    return [
        {
            "id": r.id,
            "key": f"rfq-{r.id}",
            "taker": r.taker.username,
            "taker_id": r.taker_id,
            "give_leg": r.give_leg,
            "get_leg": r.get_leg,
            "quantity": q_dec(r.quantity),
            "created_at": r.created_at,
            "quotes": quotes.get(r.id, []),
        }
        for r in rfqs
    ]


def blotter(session: Session, limit: int = BLOTTER_ROWS) -> list[Trade]:
    return list(Trade.objects.filter(session=session).select_related("taker", "maker").order_by("-id")[:limit])


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
            return f"{d['username']} as {d['role']}"
        case "InitialAllocationAssigned":
            holders = d.get("holdings_by_id", d.get("holdings", {}))
            return f"{d['mode'].replace('_', '-')} to {len(holders)} holders"
        case "SessionOpened":
            return "trading open"
        case "SessionCancelled":
            return f"cancelled: {d['reason']}"
        case "RFQRequested":
            return f"RFQ {d['rfq_id']}: {who('taker')} gives {domain.qty_str(d['quantity'])} {d['give_leg']} for {d['get_leg']}"
        case "QuoteProvided":
            return f"quote {d['quote_id']} on RFQ {d['rfq_id']}: {who('maker')} at {domain.rate_str(d['rate'])}"
        case "QuoteWithdrawn":
            return f"quote {d['quote_id']} withdrawn"
        case "QuotesExpired":
            ids = d["quote_ids"]
            return f"quote{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} expired"
        case "RFQCancelled":
            return f"RFQ {d['rfq_id']} cancelled"
        case "TradeExecuted":
            return (
                f"trade {d['trade_id']}: {who('taker')} {domain.qty_str(d['give_qty'])} {d['give_leg']} → "
                f"{domain.qty_str(d['get_qty'])} {d['get_leg']} with {who('maker')}"
            )
        case "TradingClosed":
            return "trading closed at t2: open RFQs and live quotes lapse"
        case "SessionSettled":
            return f"settled; Σ payouts = {Decimal(d['total']):,.2f}"
        case "SettlementWaiting":
            return d["reason"]
    return ""


def participant_names(session_id: str) -> dict[int, str]:
    """{user id: the name the participant joined with}: how the pages name the people events name by id."""
    return dict(Participant.objects.filter(session_id=session_id).values_list("user_id", "username"))


def event_log(session: Session, limit: int = EVENT_ROWS) -> list[EventRow]:
    events = Event.objects.filter(stream=stream_name(session.id)).order_by("-seq")[:limit]
    names = participant_names(session.id)
    return [EventRow(e.seq, e.version, e.type, e.at, summarize(e.type, e.data, names), e.hash[:10]) for e in events]


def _last_tick(session_id: str) -> int:
    return Tick.objects.filter(session_id=session_id).aggregate(m=Max("id"))["m"] or 0


def floor_position(session_id: str) -> str:
    """Where a session's floor stands: its last event's seq and its last tick's id. A page rendered at
    the same position shows everything there is."""
    return _position(Session.objects.values_list("last_seq", flat=True).get(id=session_id), _last_tick(session_id))


def _position(last_seq: int, tick: int) -> str:
    return f"{last_seq}.{tick}"


FLOOR_PARTS = frozenset({"legs", "holdings", "pool", "blotter", "events", "settlement"})


def floor_context(session_id: str, parts: Iterable[str] = FLOOR_PARTS) -> dict[str, Any]:
    """Everything the floor shows that is the same for every viewer; only what the panels in `parts` need
    (see markets.push.panels: a push after an RFQ or a quote needs the event log, not the prices)."""
    parts = frozenset(parts)
    session = Session.objects.select_related("created_by").get(id=session_id)
    tick = _last_tick(session.id)
    context: dict[str, Any] = {
        "session": session,
        "seq": max(session.last_seq, tick),
        "position": _position(session.last_seq, tick),
        "last_seq": session.last_seq,
    } | phase_context(session)
    if "legs" in parts:
        history = recent_prices(session)
        prices = {leg: recent[-1] for leg, recent in history.items() if recent}
        context["legs"] = leg_views(session, history)
    elif parts & {"holdings", "pool", "settlement"}:
        prices = latest_prices(session)
    if parts & {"holdings", "pool", "settlement"}:
        holdings, pool = holdings_and_pool(session, prices)
        context |= {"holdings": holdings, "pool": pool, "participants": {h.username for h in holdings}}
    if "blotter" in parts:
        context["trades"] = blotter(session)
    if "events" in parts:
        context["events"] = event_log(session)
    if "settlement" in parts:
        settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
        context["settlement"] = settlement
        context["settled_prices"] = None
        if settlement is not None:
            context["settled_prices"] = [
                (leg, domain.to_decimal(settlement.prices[leg], domain.PRICE_DP)) for leg in session.legs
            ]
    return context


def phase_context(session: Session) -> dict[str, Any]:
    """Where the session stands now, for templates: its phase (trading stops at t2 by itself, before the
    scheduler records it), a label, and t2 in epoch milliseconds for the page's countdown."""
    now = clock.now()
    phase = session.phase(now)
    return {
        "now": now,
        "phase": phase,
        "phase_label": PHASE_LABELS[phase],
        "t2_ms": int(session.t2.timestamp() * 1000) if session.t2 else None,
    }


PHASE_LABELS = {
    Session.Status.CREATED: "Created",
    Session.Status.OPEN: "Open",
    Session.Status.CLOSED: "Trading closed",
    Session.Status.SETTLED: "Settled",
    Session.Status.CANCELLED: "Cancelled",
}


def status_note(session: Session, now: dt.datetime | None = None) -> str:
    """One line on where a session stands, as the sessions list, the floor and the API say it."""
    now = now or clock.now()
    phase = session.phase(now)
    rule = session.fixing_rule.get("rule", "last")
    if phase == Session.Status.CREATED:
        if session.start_mode == Session.StartMode.SCHEDULED and session.t1:
            return f"opens at t1 ({domain.when(session.t1)})"
        return "not open yet: the organiser opens it"
    if phase == Session.Status.OPEN:
        if session.end_mode == Session.EndMode.TIMED and session.t2:
            return f"trading open until t2 ({domain.when(session.t2)}), then it settles at the fixing ({rule})"
        return "trading open; the organiser settles it"
    if phase == Session.Status.CLOSED:
        waiting = f"; waiting: {session.waiting_reason}" if session.waiting_reason else ""
        return f"trading closed, settles at the fixing ({rule}, t2 {domain.when(session.t2)}){waiting}"
    if phase == Session.Status.CANCELLED:
        return f"cancelled: {session.waiting_reason}" if session.waiting_reason else "cancelled"
    return "settled: payouts are final"


def priced_sessions(session_ids: list[str] | None = None) -> dict[str, list[str]]:
    """{session id: its legs} for the sessions the oracle prices: every one (or those named) that is not
    settled or cancelled, created ones too, so prices exist before t1."""
    sessions = Session.objects.exclude(status__in=(Session.Status.SETTLED, Session.Status.CANCELLED))
    if session_ids is not None:
        sessions = sessions.filter(id__in=session_ids)
    return dict(sessions.order_by("id").values_list("id", "legs"))


def viewer_context(session: Session, user) -> dict[str, Any]:
    """What differs per viewer: who they are in this session."""
    me = None
    if user is not None and user.is_authenticated:
        me = Participant.objects.filter(session=session, user=user).first()
    return {"me": me, "is_organiser": bool(me and me.role == Participant.Role.ORGANISER)}


def portfolio(user) -> list[dict[str, Any]]:
    rows = []
    for p in Participant.objects.filter(user=user).select_related("session").order_by("-session__created_at"):
        session = p.session
        prices = latest_prices(session)
        holdings, _ = holdings_and_pool(session, prices)
        mine = next((h for h in holdings if h.username == p.username), None)
        trades = list(
            Trade.objects.filter(Q(taker=p) | Q(maker=p), session=session)
            .select_related("taker", "maker")
            .order_by("-id")[:50]
        )
        rows.append({"participant": p, "session": session, "holding": mine, "trades": trades})
    return rows


def fixing_preview(session: Session) -> dict[str, Any]:
    """What settling now would use: the fixing rule's prices, or why it cannot."""
    from oracle import fixing

    at = session.t2 if session.end_mode == Session.EndMode.TIMED and session.t2 else clock.now()
    try:
        taken = fixing.take_fixing(session.id, session.legs, at, session.fixing_rule)
    except fixing.MissingPrice as exc:
        return {"ok": False, "reason": str(exc), "at": at}
    return {
        "ok": True,
        "at": at,
        "rule": taken.rule,
        "prices": [(leg, domain.to_decimal(taken.prices[leg], domain.PRICE_DP)) for leg in session.legs],
    }
