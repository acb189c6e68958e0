"""Bounded shorting on the floor: my margin (W, the requirement, the status, the short per leg and how much
of the limit it uses), and what a trade would do to it before I press Accept or place an order.

Everything is judged by the commands' own rules (`markets.domain.margin.assess` / `check_move`,
`check_bounds`, `check_gross`, `markets.domain.plan_trade`) on holdings plus the trade's deltas, at the
oracle's latest prices. The floor computes it from the holdings and prices it has read anyway: a shorting
session's floor adds one read (who was liquidated), a session without shorting none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from ledger import clock
from markets import domain, floor_sql, projections
from markets.domain import margin as rules
from markets.models import Session
from markets.selectors.common import latest_prices, money_dec, q_dec
from markets.selectors.prices import prices_at
from oracle import units

STATUS_LABELS = {"ok": "OK", "reduce_only": "Reduce-only", "liquidated": "Liquidated", "unpriced": "No price yet"}


def money(value: Fraction) -> Decimal:
    """Money as the floor shows it: exact base units (rounded down where W is a fraction of one)."""
    return money_dec(math.floor(value))


def shown(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


@dataclass
class ShortLeg:
    leg: str
    short: Decimal  # units short
    cap: Decimal  # the most allowed short
    used_pct: int  # of the cap, whole percent (rounded down)


@dataclass
class MarginView:
    """One holder's margin at the latest prices, as the panel and the monitor say it."""

    status: str  # ok, reduce_only, liquidated, unpriced (a leg held short has no price yet)
    w: Decimal | None
    requirement: Decimal | None
    binding_leg: str | None
    shorts: list[ShortLeg] = field(default_factory=list)
    liquidated: bool = False  # earlier in the session (W may have recovered since)
    terms: str = ""  # the session's settings in a few words

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def excess(self) -> Decimal | None:
        return None if self.w is None or self.requirement is None else self.w - self.requirement

    @property
    def said(self) -> str:
        """The status in plain words with its figures."""
        w, req = shown(self.w), shown(self.requirement)
        if self.status == "unpriced":
            return "No oracle price yet for a leg you hold short: W cannot be judged until it ticks."
        if self.status == "liquidated":
            if self.w is not None and self.w < 0:
                return f"Liquidated: W {w} is below zero — your shorts are bought back or deleveraged."
            return f"Liquidated earlier in this session; W is now {w} (requirement {req})."
        if self.status == "reduce_only":
            return f"Reduce-only: W {w} is under the requirement {req} — only trades that raise W are accepted."
        if not self.shorts:
            return f"OK: no short, nothing required (W {w})."
        return f"OK: W {w} is above the requirement {req} (room {shown(self.excess)})."


def view(session: Session, x: Sequence[int], prices: Sequence[int | None], liquidated: bool = False) -> MarginView:
    """The margin of holding row `x` at `prices` (leg order), by the commands' rule."""
    settings = session.margin
    caps = settings.caps(session.q)
    shorts = [
        ShortLeg(leg, q_dec(-v), q_dec(caps[k]), (-v * 100 // caps[k]) if caps[k] else 100)
        for k, (leg, v) in enumerate(zip(session.legs, x, strict=True))
        if v < 0
    ]
    try:
        judged = rules.assess(x, prices, settings, session.legs)
    except domain.DomainError:
        return MarginView("unpriced", None, None, None, shorts, liquidated, terms(session))
    status = judged.status
    if liquidated and status == "ok":
        status = "liquidated"
    binding = session.legs[judged.binding] if judged.binding is not None else None
    return MarginView(status, money(judged.w), money(judged.requirement), binding, shorts, liquidated, terms(session))


def _pct(fraction: str) -> str:
    return format((Decimal(fraction) * 100).normalize(), "f")


def terms(session: Session) -> str:
    """The session's shorting settings as the panel says them: band, initial margin, short limit."""
    return (
        f"band ±{_pct(session.margin_band)}% · requirement {_pct(session.initial_margin)}% of the short value · "
        f"limit {_pct(session.short_limit)}% of q"
    )


def liquidated(session: Session, parties: floor_sql.Parties | None = None) -> set[int]:
    """Who was liquidated in this session: from the session's participants when the rendering reads them
    anyway (`floor_sql.Parties`, one read shared with the log, the blotter and the board), none for a
    session without shorting."""
    if not session.shorting:
        return set()
    return (parties or floor_sql.Parties(session.id)).liquidated()


def vector(session: Session, prices: Mapping[str, int]) -> list[int | None]:
    return [prices.get(leg) for leg in session.legs]


# ---------------------------------------------------------------- what a trade would do


@dataclass
class Preview:
    """What a trade would do to my margin: W after it, and whether the commands would refuse it."""

    ok: bool
    w_before: Decimal | None
    w_after: Decimal | None
    requirement: Decimal | None
    status_after: str | None
    code: str = ""  # margin, short_limit, insufficient_inventory, no_price
    message: str = ""

    @property
    def said(self) -> str:
        """The refusal without its code's own prefix (the preview names the code already)."""
        return self.message.removeprefix("Margin: ").removeprefix("Short limit: ")

    @property
    def rises(self) -> bool:
        return self.w_before is not None and self.w_after is not None and self.w_after > self.w_before


def preview(
    session: Session,
    rows: Mapping[int, Sequence[int]],
    deltas: Mapping[int, Sequence[int]],
    prices: Sequence[int | None],
    *,
    me: int,
    names: Mapping[int, str] | None = None,
    gross: Sequence[int] | None = None,
) -> Preview:
    """The rule `markets.services.margin.check_moves` applies, on the holdings `rows` plus `deltas`, with
    the figures for `me`: bounds for everyone moved, the pool's gross short cap (when `gross`, the pool's
    shorts per leg, is known), then W against the requirement."""
    settings, legs = session.margin, session.legs
    caps = settings.caps(session.q)
    names = names or {}
    before = {u: list(rows.get(u) or [0] * len(legs)) for u in deltas}
    after = {u: [x + d for x, d in zip(before[u], deltas[u], strict=True)] for u in deltas}

    def who(u: int) -> str:
        return "you" if u == me else names.get(u, f"user #{u}")

    def judged(x: Sequence[int]) -> rules.Assessment | None:
        try:
            return rules.assess(x, prices, settings, legs)
        except domain.DomainError:
            return None

    was, now = judged(before[me]), judged(after[me])
    result = Preview(
        True,
        money(was.w) if was else None,
        money(now.w) if now else None,
        money(now.requirement) if now else None,
        now.status if now else None,
    )
    try:
        for u in sorted(deltas):
            rules.check_bounds(after[u], caps, legs, who(u))
        if gross is not None and any(d < 0 for row in deltas.values() for d in row):
            total = list(gross)
            for u in deltas:
                for k in range(len(legs)):
                    total[k] += max(0, -after[u][k]) - max(0, -before[u][k])
            rules.check_gross(total, caps, legs)
        for u in sorted(deltas):
            if rules.has_shorts(after[u]) or rules.has_shorts(before[u]):
                rules.check_move(who(u), before[u], after[u], prices, settings, legs)
    except domain.DomainError as exc:
        result.ok, result.code, result.message = False, exc.code, refusal(exc)
    return result


def gross_shorts(rows: Mapping[int, Sequence[int]], n_legs: int) -> list[int]:
    """The pool's shorts per leg, from everyone's holdings."""
    return [sum(max(0, -row[k]) for row in rows.values()) for k in range(n_legs)]


def quote_previews(
    session: Session, board: list[dict], rows: Mapping[int, Sequence[int]], prices: Sequence[int | None]
) -> None:
    """Each live quote's preview for its RFQ's taker (`q["preview"]`): the accept's deltas for both sides
    (`domain.plan_trade`, as `accept_quote` plans it), judged as the accept would judge them."""
    gross = gross_shorts(rows, len(session.legs))
    room = session.margin.caps(session.q)
    for r in board:
        taker = r["taker_user_id"]
        for q in r["quotes"]:
            maker = q["maker_user_id"]
            try:
                move = domain.plan_trade(
                    session.legs,
                    r["give_leg"],
                    r["get_leg"],
                    r["quantity_base"],
                    q["rate_base"],
                    list(rows.get(taker) or [0] * len(session.legs)),
                    list(rows.get(maker) or [0] * len(session.legs)),
                    room,
                )
            except domain.DomainError as exc:
                q["preview"] = Preview(False, None, None, None, None, exc.code, exc.message)
                continue
            taker_d, maker_d = move.deltas(len(session.legs))
            names = {maker: f"the maker {q['maker']}"}
            q["preview"] = preview(
                session, rows, {taker: taker_d, maker: maker_d}, prices, me=taker, names=names, gross=gross
            )


def by_taker(board: list[dict]) -> dict[int, list[tuple[int, Preview]]]:
    """The previews of a board's quotes by the user id of the taker who sees them."""
    out: dict[int, list[tuple[int, Preview]]] = {}
    for r in board:
        for q in r["quotes"]:
            if "preview" in q:
                out.setdefault(r["taker_user_id"], []).append((q["id"], q["preview"]))
    return out


@dataclass
class FloorMargin:
    """A shorting floor's margin inputs for one rendering: everyone's holdings and the prices (leg order)."""

    rows: dict[int, list[int]]
    prices: list[int | None]


def judge_all(
    session: Session, holdings: list, prices: Mapping[str, int], parties: floor_sql.Parties | None = None
) -> FloorMargin:
    """Every holding row's margin (`h.margin`), from the holdings and prices the floor read (plus one read:
    who was liquidated); and the inputs, for the previews of the board's quotes."""
    vec = vector(session, prices)
    gone = liquidated(session, parties)
    for h in holdings:
        h.margin = view(session, h.x, vec, h.user_id in gone)
    return FloorMargin({h.user_id: h.x for h in holdings}, vec)


def board_previews(session: Session, board: list[dict] | None, margin: FloorMargin | None) -> None:
    """The quote previews of `board` (read the holdings and the prices when the rendering has none: a push
    of quoting, an action's answer). Nothing in a session without shorting."""
    if not session.shorting or not board:
        return
    if margin is None:
        margin = FloorMargin(projections.holdings_by_user(session.id), vector(session, latest_prices(session)))
    quote_previews(session, board, margin.rows, margin.prices)


def order_preview(session: Session, user: int, give: int, get: int, qty: int, limit: int) -> Preview:
    """What an order would do to `user`'s W if it filled whole at its limit now (`place_order`'s rule):
    everyone's holdings (for the pool's gross shorts) and the oracle's prices at this instant, two reads."""
    rows = projections.holdings_by_user(session.id)
    prices, _ = prices_at(session, clock.now())
    change = [0] * len(session.legs)
    change[give], change[get] = -qty, domain.trade_receive(qty, limit)
    gross = gross_shorts(rows, len(session.legs))
    return preview(session, rows, {user: change}, prices, me=user, gross=gross)


_MONEY = re.compile(r"-?\d+\.\d{12}\b")


def refusal(exc: domain.DomainError) -> str:
    """A refusal as a floor form says it: a margin refusal's money figures to the cent, grouped (the API
    keeps them exact in `detail`)."""
    if exc.code != "margin":
        return exc.message
    return _MONEY.sub(lambda m: f"{Decimal(m.group(0)):,.2f}", exc.message)


def invariant_two(session: Session, matrix: Mapping[str, Sequence[int]], holds) -> tuple[str, bool, str]:
    """Invariant 2 as a shorting floor states it: nobody below minus the short limit of a leg, and the
    pool's shorts within it (`domain.check_short_bounds`, the check the commands run)."""
    n = len(session.legs)
    lows = [min(row[k] for row in matrix.values()) for k in range(n)]
    shorts = [sum(max(0, -row[k]) for row in matrix.values()) for k in range(n)]
    caps = session.margin.caps(session.q)
    broken = holds(domain.check_short_bounds, lows, shorts, caps)

    def said(x: int) -> str:
        return units.short(x, domain.QTY_DP)

    short = ", ".join(
        f"{said(total)} of {said(cap)} {leg}"
        for leg, total, cap in zip(session.legs, shorts, caps, strict=True)
        if total
    )
    detail = f"shorts within the limit: {short}" if short else "no shorts"
    return "2 Within short limits", broken is None, broken or detail


def invariant_five(matrix: Mapping[str, Sequence[int]], vec: Sequence[int] | None, settlement) -> tuple:
    """5, where shorts could make it bite: settled, no payout below 0 (a haircut covered any deficit);
    before, the lowest x·S at the latest prices and whether a haircut would be needed."""
    name = "5 No payout below 0"
    if settlement is not None:
        if settlement.deficit:
            return name, True, f"a haircut covered a deficit of {Decimal(settlement.deficit):,.2f}"
        return name, True, "every payout ≥ 0, no haircut"
    if vec is None:
        return name, True, "waiting for prices", True
    low = min(domain.payout(row, vec) for row in matrix.values())
    if low < 0:
        return name, True, f"lowest x·S {money_dec(low):,.2f}: settled now, a haircut would cover it"
    return name, True, f"lowest x·S {money_dec(low):,.2f} at the latest prices"
