"""Batch auctions' cut: every resting order placed before it clears together, at one price per leg
(`markets.domain.batch`), in one command: the book read under the session's lock, the oracle's prices at
the cut, the clearing, its exact check, one BatchCleared event (the fills, or why nothing traded) and the
invariants before the commit. The scheduler cuts when the clock makes a batch due (`clear_due_batches`,
run by `run_oracle` and `settle --due`); the organiser may cut now. Two schedulers at once cut a batch
once: the second finds the session's next cut moved on, under the same lock."""

from __future__ import annotations

import datetime as dt

from ledger import clock
from markets import domain
from markets.domain import batch
from markets.domain import orders as rules
from markets.errors import Conflict, DomainError
from markets.models import Batch, Order, Session
from markets.selectors.prices import splits_of
from markets.services import margin
from markets.services.command import (
    _Command,
    _command,
    _iso,
    _require_organiser,
    _require_trading,
    _require_unpaused,
    _require_user,
    _retrying,
)
from markets.services.orders import _require_batch
from oracle import fixing as fixing_rules


@_retrying
def clear_batch(actor, session_id: str) -> Batch | None:
    """Cut the session's book. The organiser (`actor`) cuts now; the scheduler (`actor` None) cuts at the
    scheduled instant once the clock has passed it, and returns None when no cut is due (not yet, paused,
    trading over: a cut on the grid at or after t2 does not happen, trading closes instead)."""
    _require_user(actor)
    with _command(session_id) as cmd:
        session = cmd.session
        if actor is not None:
            _require_organiser(session, actor)
            _require_batch(session)
            _require_trading(session, cmd.now)
            _require_unpaused(session)
            cut = cmd.now
        else:
            cut = session.next_cut_at
            due = (
                session.trades_by_batch
                and cut is not None
                and cut <= cmd.now
                and session.paused_at is None
                and session.trading_open(cmd.now)
                and (session.trading_ends is None or cut < session.trading_ends)
            )
            if not due:
                return None
        number = _cut(cmd, cut)
    return Batch.objects.get(session_id=session_id, number=number)


def _cut(cmd: _Command, cut: dt.datetime) -> int:
    session = cmd.session
    legs = list(session.legs)
    index = {leg: k for k, leg in enumerate(legs)}
    resting = (
        Order.objects.filter(session_id=session.id, status=Order.Status.RESTING, placed_at__lt=cut)
        .order_by("id")
        .values_list("id", "participant__user_id", "give_leg", "get_leg", "rest", "limit_rate")
    )
    orders = [batch.Order(i, u, index[give], index[get], rest, limit) for i, u, give, get, rest, limit in resting]
    held: list[int] = []
    try:
        fixing = fixing_rules.take_fixing(session.id, legs, cut, {"rule": "last"}, splits=splits_of(session))
    except fixing_rules.MissingPrice as exc:
        reference, ticks = {}, {}
        result: batch.Result = batch.NoClearing("no_price", f"No oracle price at the cut: {exc}")
    else:
        reference = fixing.prices
        ticks = {leg: ids[0] for leg, ids in fixing.ticks.items()}
        try:
            book = batch.make_book(
                legs, [reference[leg] for leg in legs], rules.band_fraction(session.batch_band), orders
            )
        except DomainError as exc:  # a price the band cannot move around (it would reach zero): nothing trades
            result = batch.NoClearing("invalid_book", exc.message)
        else:
            result, held = _clear_within_margin(cmd, book, [reference[leg] for leg in legs])
            problems = batch.check(book if not held else _without(book, held), result)
            if problems:  # never half a batch: nothing trades, and the record says why
                result = batch.NoClearing("check_failed", "; ".join(problems[:5]))
    pending = margin.pending_buy_backs(session, {o.owner for o in orders}) if reference else []
    number = session.batches + 1
    after = rules.next_cut(cut, session.batch_seconds, cmd.now)
    cmd.emit(
        "BatchCleared",
        {
            "batch": number,
            "cut_at": _iso(cut),
            "legs": legs,
            "band": session.batch_band,
            "reference": reference,
            "ticks": ticks,
            "orders": [o.id for o in orders],
            "result": batch.result_to_dict(result),
            "volume": domain.money_str(result.volume if isinstance(result, batch.Clearing) else 0),
            "next_cut_at": _iso(after),
        }
        | ({"margin_held": held} if held else {}),
    )
    for user in pending:  # what the buy-back left short is deleveraged at the cut's prices
        margin.deleverage(cmd, user, [reference[leg] for leg in legs], ticks, batch=number)
    return number


def _without(book: batch.Book, held: list[int]) -> batch.Book:
    return batch.Book(book.legs, book.reference, book.band, tuple(o for o in book.orders if o.id not in held))


def _clear_within_margin(cmd: _Command, book: batch.Book, reference: list[int]) -> tuple[batch.Result, list[int]]:
    """Clear the book; in a shorting session, a participant whose fills would break the margin rule (or
    take the pool's shorts of a leg past the cap) has its orders held out of this batch, and the rest is
    cleared again, until every fill fits. Returns the result and the orders held out (in id order)."""
    held: list[int] = []
    while True:
        current = _without(book, held) if held else book
        result = batch.clear(current)
        if not cmd.session.shorting or not isinstance(result, batch.Clearing):
            return result, sorted(held)
        deltas: dict[int, list[int]] = {}
        for fill in result.fills:
            row = deltas.setdefault(fill.owner, [0] * len(book.legs))
            row[fill.give] -= fill.given
            row[fill.get] += fill.received
        culprit = _culprit(cmd, result, deltas, reference)
        if culprit is None:
            return result, sorted(held)
        held.extend(o.id for o in current.orders if o.owner == culprit)


def _culprit(cmd: _Command, result: batch.Clearing, deltas: dict[int, list[int]], reference: list[int]) -> int | None:
    """Whose orders to hold out of the batch: the first participant (by user id) whose own fills break the
    margin rule; else, if together they take the pool's shorts of a leg past the cap, the owner of the
    latest order that fills by giving what its owner does not hold; None when every fill fits."""
    for user in sorted(deltas):
        try:
            margin.check_moves(cmd, {user: deltas[user]}, prices=reference)
        except DomainError:
            return user
    try:
        margin.check_moves(cmd, deltas, prices=reference)
    except DomainError:
        shorting = [f for f in result.fills if margin.goes_short(cmd.session, f.owner, f.give, deltas[f.owner])]
        return max(shorting or result.fills, key=lambda f: f.order).owner
    return None


def clear_due_batches() -> list[tuple[str, str]]:
    """Cut every batch the clock has made due (open batch sessions, not paused), once each."""
    due = Session.objects.filter(
        status=Session.Status.OPEN,
        mechanism__in=(Session.Mechanism.BATCH, Session.Mechanism.BOTH),
        next_cut_at__lte=clock.now(),
        paused_at__isnull=True,
    ).values_list("id", flat=True)
    outcomes = []
    for sid in sorted(due):
        try:
            cut = clear_batch(None, sid)
        except (Conflict, DomainError) as exc:
            outcomes.append((sid, f"batch not cleared: {exc.message}"))
            continue
        if cut is not None:
            said = f"{cut.filled} orders filled, volume {cut.volume}" if cut.outcome == "cleared" else cut.reason
            outcomes.append((sid, f"batch {cut.number}: {said}"))
    return outcomes
