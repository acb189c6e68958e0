"""The floor's panels, read once per page or per push (see markets.push.panels for which panel is which).

Numbers stay exact: quantities and prices are Decimals made from the stored integers; values are
x . S computed in integers and only then turned into Decimals for display.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q

from ledger import clock
from markets import domain, floor_sql, pricing, sql
from markets.models import RFQ, Participant, Payout, Session, Trade
from markets.selectors import action_banner as corporate
from markets.selectors import margin_floor
from markets.selectors.batch_floor import batch_context, moves_said
from markets.selectors.chart import price_chart
from markets.selectors.common import latest_prices, money_dec, price_vector, q_dec
from markets.selectors.events import EVENT_ROWS, event_log
from markets.selectors.fixings import fixing_panel
from markets.selectors.prices import PriceHistory, price_history
from markets.selectors.results import competition_ranks
from markets.selectors.sessions import phase_context
from oracle import units

SPARK_POINTS = 120
BLOTTER_ROWS = 25


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


def settled_at_prices(session: Session) -> tuple[dict[str, int], dt.datetime | None] | None:
    """A settled session's prices are its settlement prices (S_t2), and its price history ends at the
    fixing: ticks written after it move nothing on its floor. None while it is not settled."""
    settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
    if settlement is None:
        return None
    at = settlement.fixing.get("at") if isinstance(settlement.fixing, dict) else None
    until = dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else settlement.settled_at
    return dict(settlement.prices), until


def leg_views(session: Session, history: PriceHistory, prices: dict[str, int] | None = None) -> list[LegView]:
    """One card per leg: the latest price (or `prices`, e.g. S_t2), its change since the opening, a
    sparkline of the last SPARK_POINTS prices."""
    views = []
    for k, leg in enumerate(session.legs):
        recent = [price for _, price in history.recent[leg][-SPARK_POINTS:]]
        first = history.first.get(leg)
        price = prices[leg] if prices and leg in prices else (recent[-1] if recent else None)
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


def fair_rates(session: Session, prices: dict[str, int]) -> str:
    """The oracle-implied rate of every ordered pair of legs, as JSON for the page's hints:
    {"AAPL": {"NVDA": "1.7046..."}}: units of the second per unit of the first (exact, 8 dp)."""
    table = {
        give: {get: domain.rate_str(pricing.implied_rate(prices[give], prices[get])) for get in prices if get != give}
        for give in prices
        if prices[give] > 0 and all(prices[get] > 0 for get in prices)
    }
    return json.dumps(table, separators=(",", ":"))


@dataclass
class HoldingRow:
    username: str
    role: str
    qty: list[Decimal]
    value: Decimal | None
    pnl: Decimal | None
    payout: str | None = None
    user_id: int | None = None  # names the row in the page (id="holding-<user id>"), so a push can replace it
    name: str = ""  # as people see it (the display name joined with)
    rank: int | None = None  # by P&L once settled, as the results rank it
    x: list[int] = field(default_factory=list)  # the holdings in base units (the margin is judged on them)
    margin: Any = None  # a shorting session's `margin_floor.MarginView` at the latest prices (else None)
    cash: Decimal | None = None  # dividends and cash in lieu recorded for the holder (paid with the payout)


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


def holdings_and_pool(session: Session, prices: dict[str, int], actions=None) -> tuple[list[HoldingRow], Pool]:
    """A row per holder (by the name people see), the pool, and the invariants; once settled, at S_t2
    with each payout and its rank by P&L. `actions`: the session's corporate actions when read already."""
    vec = price_vector(session, prices)
    settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
    if settlement is not None:
        vec = [settlement.prices[leg] for leg in session.legs]
    rows_by_user: dict[str, dict[str, Any]] = {}
    participants: dict[str, tuple[str, int, str]] = {}
    for username, name, role, user_id, k, qty, initial in floor_sql.holdings_of(session.id):
        row = rows_by_user.setdefault(username, {"qty": [0] * len(session.legs), "initial": [0] * len(session.legs)})
        row["qty"][k] = qty
        row["initial"][k] = initial
        participants[username] = (role, user_id, name)
    payouts = (
        dict(Payout.objects.filter(session=session).values_list("participant__username", "amount"))
        if settlement is not None
        else {}
    )
    rows, pnls = [], []
    matrix = {u: r["qty"] for u, r in rows_by_user.items()}
    for username, r in sorted(rows_by_user.items(), key=lambda item: (participants[item[0]][2].casefold(), item[0])):
        value = pnl = None
        if vec is not None:
            value_base = domain.payout(r["qty"], vec)
            pnls.append(value_base - domain.payout(r["initial"], vec))
            value, pnl = money_dec(value_base), money_dec(pnls[-1])
        role, user_id, name = participants[username]
        row = HoldingRow(username, role, [q_dec(x) for x in r["qty"]], value, pnl, payouts.get(username), user_id, name)
        row.x = r["qty"]
        rows.append(row)
    if settlement is not None and vec is not None:
        for row, rank in zip(rows, competition_ranks(pnls), strict=True):
            row.rank = rank
    pool = Pool(q=[q_dec(x) for x in session.q], value=money_dec(domain.payout(session.q, vec)) if vec else None)
    # The initial allocation as corporate actions carried it (the projection moves it with each action).
    initial = {u: r["initial"] for u, r in rows_by_user.items()}
    pool.checks = _checks(session, matrix, initial, vec, settlement)
    return rows, pool


def _holds(check, *args) -> str | None:
    """Run one of the domain's invariant checks: None when it holds, its message when it does not."""
    try:
        check(*args)
    except domain.InvariantViolation as exc:
        return exc.message
    return None


def _checks(
    session: Session, matrix: dict[str, list[int]], initial: dict[str, list[int]], vec: list[int] | None, settlement
) -> list[Check]:
    """The invariants as the floor shows them, decided by the same checks the commands run (5 only where
    shorting could make a payout negative)."""
    if not matrix:
        return [
            Check("1 Conservation", True, "not allocated yet", pending=True),
            Check("2 No negative holding", True, "not allocated yet", pending=True),
            Check("3 Zero-sum trades", True, "no trades", pending=True),
            Check("4 Settlement sum", True, "not settled", pending=True),
        ]
    low = min(min(row) for row in matrix.values())
    trades = floor_sql.trade_count(session.id)
    moved = [[x - x0 for x, x0 in zip(matrix[u], initial[u], strict=True)] for u in matrix]
    conservation = _holds(domain.check_conservation, matrix, session.q)
    negative = _holds(domain.check_non_negative, matrix)
    zero_sum = _holds(domain.check_zero_sum, *moved)
    checks = [
        Check("1 Conservation", conservation is None, conservation or "Σx = q on every leg"),
        Check(*margin_floor.invariant_two(session, matrix, _holds))
        if session.shorting
        else Check("2 No negative holding", negative is None, negative or f"min x = {domain.qty_str(low)}"),
        Check("3 Zero-sum trades", zero_sum is None, zero_sum or f"{moves_said(session, trades)}, ΣΔx = 0"),
    ]
    if settlement is not None:
        ok = settlement.total == settlement.expected
        checks.append(Check("4 Settlement sum", ok, f"Σ payouts = q·S = {Decimal(settlement.total):,.2f}"))
    elif vec is not None:
        paid = domain.payouts(matrix, vec)
        wrong = _holds(domain.check_settlement_sum, paid, session.q, vec)
        expected = money_dec(domain.payout(session.q, vec))
        checks.append(
            Check("4 Settlement sum", wrong is None, wrong or f"at latest prices Σ x·S = q·S = {expected:,.2f}")
        )
    else:
        checks.append(Check("4 Settlement sum", True, "waiting for prices", pending=True))
    if session.shorting:
        checks.append(Check(*margin_floor.invariant_five(matrix, vec, settlement)))
    return checks


def board_data(
    session: Session,
    prices: dict[str, int] | None = None,
    only: Iterable[int] | None = None,
    parties: floor_sql.Parties | None = None,
) -> list[dict[str, Any]]:
    """Open RFQs with their live quotes, as plain data (rendered per viewer by the push); `prices` are the
    latest prices when the caller has read them already; `only` names the RFQs wanted (a push's rows);
    `parties` the session's participants when the caller has read them already."""
    now = clock.now()
    if session.phase(now) != Session.Status.OPEN:
        return []  # from t2 on, what trading left open has lapsed (the scheduler records it when it runs)
    parties = parties if parties is not None else floor_sql.Parties(session.id)
    rfqs = floor_sql.open_rfqs(session.id, parties, only)
    if prices is None:
        prices = latest_prices(session) if rfqs else {}

    def fair(rfq: RFQ) -> int | None:
        give, get = prices.get(rfq.give_leg), prices.get(rfq.get_leg)
        return pricing.implied_rate(give, get) if give and get else None

    fairs = {r.id: fair(r) for r in rfqs}
    quotes: dict[int, list[dict[str, Any]]] = {}
    for quote in floor_sql.live_quotes([r.id for r in rfqs], parties):
        rfq = next(r for r in rfqs if r.id == quote.rfq_id)
        quotes.setdefault(quote.rfq_id, []).append(
            {
                "id": quote.id,
                "key": f"quote-{quote.id}",
                "maker": quote.maker.display_name,
                "maker_id": quote.maker_id,
                "maker_user_id": quote.maker.user_id,
                "rate": domain.to_decimal(quote.rate, domain.RATE_DP),
                "receive": q_dec(domain.trade_receive(rfq.quantity, quote.rate)),
                "expires_at": quote.expires_at,
                "expires_ms": int(quote.expires_at.timestamp() * 1000),
                "expired": quote.expires_at <= now,
                "rate_base": quote.rate,
                "vs_fair": f"{Decimal(pricing.distance_bp(quote.rate, fairs[rfq.id])) / 100:+.2f}%"
                if fairs[rfq.id]
                else "",
            }
        )
    return [
        {
            "id": r.id,
            "key": f"rfq-{r.id}",
            "taker": r.taker.display_name,
            "taker_id": r.taker_id,
            "taker_user_id": r.taker.user_id,
            "quantity_base": r.quantity,
            "give_leg": r.give_leg,
            "get_leg": r.get_leg,
            "quantity": q_dec(r.quantity),
            "created_at": r.created_at,
            "quotes": quotes.get(r.id, []),
            "fair": domain.to_decimal(fairs[r.id], domain.RATE_DP).normalize() if fairs[r.id] else None,
            # What the maker's form offers first: the fair rate to 4 decimals (a maker adds its spread).
            "fair_prefill": units.short(fairs[r.id] // 10**4 * 10**4, domain.RATE_DP) if fairs[r.id] else "",
        }
        for r in rfqs
    ]


def blotter(
    session: Session, limit: int = BLOTTER_ROWS, before: int | None = None, parties: floor_sql.Parties | None = None
) -> list[Trade]:
    """The newest `limit` trades (older than trade `before`, for the next page), newest first."""
    return floor_sql.trades(parties or floor_sql.Parties(session.id), limit=limit, before=before)


def last_tick(session_id: str) -> int:
    """The id of the session's last tick (0 before any): half of where its floor stands."""
    return floor_sql.last_tick_id(session_id)


def floor_position(session_id: str) -> str:
    """Where a session's floor stands: its last event's seq and its last tick's id. A page rendered at
    the same position shows everything there is."""
    return position_text(Session.objects.values_list("last_seq", flat=True).get(id=session_id), last_tick(session_id))


def position_text(last_seq: int, tick: int) -> str:
    return f"{last_seq}.{tick}"


FLOOR_PARTS = frozenset(
    {"fixing", "legs", "chart", "holdings", "pool", "blotter", "events", "settlement", "cut", "batch"}
)


def floor_context(session_id: str, parts: Iterable[str] = FLOOR_PARTS) -> dict[str, Any]:
    """Everything the floor shows that is the same for every viewer; only what the panels in `parts` need
    (see markets.push.panels: a push after an RFQ or a quote needs the event log, not the prices)."""
    parts = frozenset(parts)
    session = sql.get_existing(Session, session_id)
    tick = last_tick(session.id)
    parties = floor_sql.Parties(session.id)  # read once, if a panel names anyone (the log, the blotter, the board)
    context: dict[str, Any] = {
        "session": session,
        "parties": parties,
        "seq": max(session.last_seq, tick),
        "position": position_text(session.last_seq, tick),
        "last_seq": session.last_seq,
        "trades_kept": BLOTTER_ROWS,  # what a browser keeps of the rows pushed to it (static/js/floor.js)
        "events_kept": EVENT_ROWS,
    } | phase_context(session)
    actions = corporate.session_actions(session, context["now"])  # the banner's, in the status line: one read
    context["actions"] = corporate.banner(actions, context["now"])
    settled = settled_at_prices(session)
    context["settled"] = settled is not None
    history = None
    if parts & {"legs", "chart"}:
        history = price_history(session, until=settled[1] if settled else None)
        prices = settled[0] if settled else history.latest()
    elif parts & {"holdings", "pool", "settlement"}:
        prices = settled[0] if settled else latest_prices(session)
    if not settled and parts & {"legs", "chart", "holdings", "pool", "settlement"}:
        context["prices"] = prices  # the latest: the board's fair rates read them too
    if "legs" in parts:
        context["legs"] = leg_views(session, history, prices)
        context["fair_rates"] = fair_rates(session, prices)
    if parts & {"holdings", "pool", "settlement"}:
        holdings, pool = holdings_and_pool(session, prices, actions)
        context |= {"holdings": holdings, "pool": pool, "participants": {h.username for h in holdings}}
        corporate.attach_cash(session.id, actions, holdings)
        if session.shorting and not settled:
            context["margin"] = margin_floor.judge_all(session, holdings, prices, parties)
    if "chart" in parts:
        context["chart"] = price_chart(session, until=settled[1] if settled else None, history=history)
    if "blotter" in parts:
        context["trades"] = blotter(session, parties=parties)
    if "events" in parts:
        context["events"] = event_log(session, parties=parties)
    if "fixing" in parts:  # the rule in words; its progress is read only while the window runs
        context["fixing"] = fixing_panel(session, context["now"])
    context |= batch_context(session, parts)  # batch auctions: the next cut, the last batch, the history
    if "settlement" in parts:
        settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
        context["settlement"] = settlement
        context["settled_prices"] = None
        if settlement is not None:
            context["settled_prices"] = [
                (leg, domain.to_decimal(settlement.prices[leg], domain.PRICE_DP)) for leg in session.legs
            ]
    return context


def portfolio(user) -> list[dict[str, Any]]:
    rows = []
    for p in Participant.objects.filter(user=user).select_related("session").order_by("-session__created_at"):
        session = p.session
        prices = latest_prices(session)
        holdings, _ = holdings_and_pool(session, prices)
        mine = next((h for h in holdings if h.user_id == p.user_id), None)
        trades = list(
            Trade.objects.filter(Q(taker=p) | Q(maker=p), session=session)
            .select_related("taker", "maker")
            .order_by("-id")[:50]
        )
        rows.append({"participant": p, "session": session, "holding": mine, "trades": trades})
    return rows
