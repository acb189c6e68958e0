"""Bounded shorting inside the commands: the margin rule on every side of a trade, quote, order and fill,
the pool's gross short cap, and liquidation when W falls below 0 (the scheduler's step after the ticks).
The rules themselves are `markets.domain.margin`; this module reads what they need under the command's
lock (holdings, the oracle's latest prices at the command's clock) and emits what they decide."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.db.models import F, Q

from ledger import clock
from markets import domain, projections, sql
from markets.domain import liquidation
from markets.domain import margin as rules
from markets.errors import Conflict, DomainError
from markets.models import RFQ, Holding, Order, Participant, Quote, Session
from markets.selectors.prices import prices_at
from markets.services.command import _Command, _command, _retrying


def rows_of(session_id: str, users: Sequence[int]) -> dict[int, list[int]]:
    """What the given users hold (not less reservations), in leg order."""
    return sql.holding_rows(session_id, list(users))


def gross_shorts(session_id: str, n_legs: int) -> list[int]:
    """The pool's shorts per leg: sum over participants of max(0, -x_ik)."""
    totals = sql.leg_totals(session_id)
    return [totals.get(k, (0, 0, 0))[2] for k in range(n_legs)]


def _who(user: int, me: int | None, names: Mapping[int, str]) -> str:
    return "you" if user == me else names.get(user, f"user #{user}")


def check_moves(
    cmd: _Command,
    deltas: Mapping[int, Sequence[int]],
    *,
    me: int | None = None,
    names: Mapping[int, str] | None = None,
    prices: Sequence[int | None] | None = None,
    held: Mapping[int, Sequence[int]] | None = None,
) -> None:
    """The margin rule for every participant a move touches (`deltas`: user id -> change per leg): no
    holding below minus its short limit, the pool's shorts within the cap, and W >= IM after it (or rising,
    for one already under IM). Refused with its code and figures before anything is written. A session
    without shorting keeps today's rule: nobody below zero."""
    session = cmd.session
    if not session.shorting:
        return
    settings = session.margin
    caps = settings.caps(session.q)
    # `held`: what the movers hold now (not less reservations), when the caller has just read it under the
    # same lock (an accept in a session without orders): one statement fewer on the trade path.
    before = {u: list(held[u]) for u in deltas} if held is not None else rows_of(session.id, sorted(deltas))
    after = {u: [x + d for x, d in zip(before[u], deltas[u], strict=True)] for u in deltas}
    names = names or {}
    for user in sorted(deltas):
        rules.check_bounds(after[user], caps, session.legs, _who(user, me, names))
    grows = [(u, k) for u in deltas for k in range(len(session.legs)) if min(after[u][k], 0) < min(before[u][k], 0)]
    if grows:  # only a move that deepens a short can take the pool's shorts past the cap
        gross = gross_shorts(session.id, len(session.legs))
        for user in deltas:
            for k in range(len(session.legs)):
                gross[k] += max(0, -after[user][k]) - max(0, -before[user][k])
        rules.check_gross(gross, caps, session.legs)
    if not any(rules.has_shorts(row) for row in after.values()):
        return
    if prices is None:
        prices, _ = prices_at(session, cmd.now)
    for user in sorted(deltas):
        if rules.has_shorts(after[user]) or rules.has_shorts(before[user]):
            rules.check_move(_who(user, me, names), before[user], after[user], prices, settings, session.legs)


def pending_buy_backs(session: Session, owners: set[int]) -> list[int]:
    """Liquidated participants whose buy-back orders are in this batch: after it, what they still owe
    short is deleveraged."""
    if not session.shorting or not owners:
        return []
    return sorted(
        Participant.objects.filter(session_id=session.id, liquidation_pending=True, user_id__in=owners).values_list(
            "user_id", flat=True
        )
    )


def goes_short(session: Session, user: int, leg: int, change: Sequence[int]) -> bool:
    """Whether `change` leaves the user short of the leg."""
    return rows_of(session.id, [user])[user][leg] + change[leg] < 0


def room(session: Session) -> list[int]:
    """What each leg may be given beyond what is held: the short limit (0 where shorting is off)."""
    return session.margin.caps(session.q) if session.shorting else [0] * len(session.legs)


# ---------------------------------------------------------------- liquidation


def waiting_for_buy_back(session: Session) -> set[int]:
    """Liquidated participants whose buy-back orders (placed at the instant of their liquidation) still rest
    for the next batch. One who took them off the book waits no more: it is judged again (and deleveraged)."""
    return set(
        Order.objects.filter(
            session_id=session.id,
            status=Order.Status.RESTING,
            participant__liquidation_pending=True,
            placed_at=F("participant__liquidated_at"),
        ).values_list("participant__user_id", flat=True)
    )


def due_for_liquidation(session: Session, now: dt.datetime) -> list[int]:
    """The participants whose W is below 0 at the oracle's latest prices (not already waiting for their
    buy-back batch), by user id."""
    matrix = projections.holdings_by_user(session.id)
    short = {u: row for u, row in matrix.items() if rules.has_shorts(row)}
    if not short:
        return []
    pending = waiting_for_buy_back(session)
    prices, _ = prices_at(session, now)
    due = []
    for user, row in sorted(short.items()):
        if user in pending:
            continue
        try:
            if rules.assess(row, prices, session.margin).w < 0:
                due.append(user)
        except DomainError:  # a leg without a price yet: nothing can be judged until it ticks
            continue
    return due


@_retrying
def liquidate(session_id: str) -> list[int]:
    """Liquidate every participant of the session whose W < 0 now (re-judged under the session's lock, at
    the command's clock and the latest ticks: a position that recovered meanwhile is left alone). Its open
    RFQs, live quotes and resting orders go; in a batch session trading now, its shorts are offered back in
    the next batch at the band's edge (PositionLiquidated, then OrderPlaced); otherwise they are
    auto-deleveraged at once (PositionLiquidated, then AutoDeleveraged). Returns the users liquidated."""
    with _command(session_id) as cmd:
        session = cmd.session
        if not session.shorting or not session.trading_open(cmd.now):
            return []
        due = due_for_liquidation(session, cmd.now)
        if not due:
            return []
        prices, ticks = prices_at(session, cmd.now)
        for user in due:
            _liquidate_one(cmd, user, prices, ticks)
    return due


def _liquidate_one(cmd: _Command, user: int, prices: list[int | None], ticks: dict[str, int]) -> None:
    session = cmd.session
    row = rows_of(session.id, [user])[user]
    judged = rules.assess(row, prices, session.margin, session.legs)
    if judged.w >= 0:  # an earlier deleveraging in this command paid it enough
        return
    me = Participant.objects.get(session_id=session.id, user_id=user)
    _withdraw_everything(cmd, me)
    buy_back = (
        not me.liquidation_pending  # its buy-back orders were taken off the book: no second chance
        and session.trades_by_batch
        and session.paused_at is None
        and session.next_cut_at is not None
        and (session.trading_ends is None or session.next_cut_at < session.trading_ends)
    )
    orders = []
    if buy_back:
        from markets.domain import orders as order_rules

        orders = liquidation.buy_back_orders(row, prices, order_rules.band_fraction(session.batch_band))  # type: ignore[arg-type]
        buy_back = bool(orders)
    cmd.emit(
        "PositionLiquidated",
        {
            "user_id": user,
            "holdings": row,
            "prices": {leg: prices[k] for k, leg in enumerate(session.legs) if prices[k] is not None},
            "ticks": ticks,
            "margin_band": session.margin_band,
            "W": rules.money_text(judged.w),
            "requirement": rules.money_text(judged.requirement),
            "method": "buy_back" if buy_back else "deleverage",
        },
    )
    if buy_back:
        for give, get, quantity, limit in orders:
            cmd.emit(
                "OrderPlaced",
                {
                    "order_id": sql.next_id(Order),
                    "user_id": user,
                    "give_leg": session.legs[give],
                    "get_leg": session.legs[get],
                    "quantity": quantity,
                    "limit_rate": limit,
                    "batches": 1,
                    "liquidation": True,
                },
            )
    else:
        deleverage(cmd, user, prices, ticks)  # type: ignore[arg-type]


def _withdraw_everything(cmd: _Command, me: Participant) -> None:
    """A liquidated participant's open RFQs are cancelled, its live quotes withdrawn, its orders cancelled."""
    for rfq_id in RFQ.objects.filter(taker=me, status=RFQ.Status.OPEN).order_by("id").values_list("id", flat=True):
        cmd.emit("RFQCancelled", {"rfq_id": rfq_id, "reason": "liquidation"})
    for quote_id, rfq_id in (
        Quote.objects.filter(maker=me, status=Quote.Status.LIVE).order_by("id").values_list("id", "rfq_id")
    ):
        cmd.emit("QuoteWithdrawn", {"quote_id": quote_id, "rfq_id": rfq_id, "reason": "liquidation"})
    for order_id in (
        Order.objects.filter(participant=me, status=Order.Status.RESTING).order_by("id").values_list("id", flat=True)
    ):
        cmd.emit("OrderCancelled", {"order_id": order_id, "user_id": me.user_id, "reason": "liquidation"})


def deleverage(cmd: _Command, user: int, prices: Sequence[int], ticks: Mapping[str, int], batch: int | None = None):
    """AutoDeleveraged: every short `user` still has, closed against the ranked holders of the leg at the
    oracle's price, in one event naming the ticks, the ranking and every unit moved."""
    session = cmd.session
    matrix = projections.holdings_by_user(session.id)
    if not rules.has_shorts(matrix[user]):
        return None
    missing = [leg for k, leg in enumerate(session.legs) if prices[k] is None and matrix[user][k] != 0]
    if missing:
        raise Conflict(f"Cannot deleverage without a price for {', '.join(missing)}", "no_price")
    plan = liquidation.plan_deleverage(user, matrix, prices)
    domain.check_zero_sum(*plan.deltas.values())
    payload = plan.payload(session.legs) | {
        "prices": {leg: prices[k] for k, leg in enumerate(session.legs)},
        "ticks": dict(ticks),
    }
    if batch is not None:
        payload["after_batch"] = batch
    event = cmd.emit("AutoDeleveraged", payload)
    _unreserve_deleveraged(cmd, plan)
    return event


def _unreserve_deleveraged(cmd: _Command, plan: liquidation.Deleverage) -> None:
    """A holder that gave units it had offered in resting orders no longer holds what those orders
    promise: its orders giving that leg are cancelled, newest first, until they fit what it now holds
    (`liquidation.orders_released`)."""
    legs = cmd.session.legs
    pairs = {(u, k) for u, k, _ in plan.moves}
    users = sorted({u for u, _ in pairs})
    held, reserved = {}, {}
    for user, k, qty, booked in Holding.objects.filter(
        session_id=cmd.session.id, participant__user_id__in=users
    ).values_list("participant__user_id", "leg_index", "qty", "reserved"):
        held[(user, k)], reserved[(user, k)] = qty, booked
    resting: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for user, give, order_id, rest in (
        Order.objects.filter(session_id=cmd.session.id, participant__user_id__in=users, status=Order.Status.RESTING)
        .order_by("-id")
        .values_list("participant__user_id", "give_leg", "id", "rest")
    ):
        resting.setdefault((user, legs.index(give)), []).append((order_id, rest))
    for user, order_id in liquidation.orders_released(plan.moves, held, reserved, resting):
        cmd.emit("OrderCancelled", {"order_id": order_id, "user_id": user, "reason": "deleveraged"})


def liquidate_due_sessions() -> list[tuple[str, str]]:
    """The scheduler's step after the ticks: every open shorting session, its participants under W < 0
    liquidated (one command per session)."""
    now = clock.now()
    ids = (
        Session.objects.filter(status=Session.Status.OPEN)
        .filter(~Q(short_limit=""))
        .values_list("id", flat=True)
        .order_by("id")
    )
    outcomes = []
    for sid in ids:
        session = Session.objects.get(id=sid)
        if not session.trading_open(now) or not due_for_liquidation(session, now):
            continue
        try:
            users = liquidate(sid)
        except (Conflict, DomainError) as exc:
            outcomes.append((sid, f"liquidation not run: {exc.message}"))
            continue
        if users:
            outcomes.append((sid, f"liquidated user(s) {', '.join(map(str, users))}"))
    return outcomes
