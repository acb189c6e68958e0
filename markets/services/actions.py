"""Corporate actions (issue #33, the service's first part): the organiser schedules an action on a leg at a
cut (`schedule_action`), and the scheduler applies each one at its cut exactly once (`apply_due_actions`,
in `run_due`: `run_oracle` runs it about once a second, `settle --due` from cron), in one command: the
open RFQs and resting orders on the leg cancelled first, then `q` and every holding moved by the pure
rule (`markets.domain.actions`), the cash recorded per holder, and the invariants checked before commit.

Kinds here: `split` (`ratio`, e.g. "10/1", "1/10" for a reverse split), `dividend` (`amount` per unit),
`merger` (`into` another leg at `ratio`, or `cash` per unit; the leg is then empty), `rename` (`to`: the
name people see; the leg's identity stays). Spin-offs (a new leg) and the prices' adjustment come next.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from markets import domain, projections
from markets.domain import actions as rules
from markets.errors import Conflict, DomainError
from markets.models import RFQ, CorporateAction, Order, Quote, Session
from markets.selectors.prices import prices_at
from markets.services.command import _Command, _command, _iso, _require_organiser, _retrying

KINDS = ("split", "dividend", "merger", "rename")


@_retrying
def schedule_action(actor, session_id: str, kind: str, leg: str, effective_at: dt.datetime, **params: Any):
    """Schedule `kind` on `leg` at `effective_at` (organiser). Checked now: the kind and its parameters, the
    leg, a cut after now and, in a timed session, before t2. Returns the CorporateAction."""
    with _command(session_id) as cmd:
        session = cmd.session
        _require_organiser(session, actor)
        if session.status not in (Session.Status.CREATED, Session.Status.OPEN):
            raise Conflict(
                f"Session {session.id} is {session.status}: actions are scheduled before it ends", "session_not_open"
            )
        if kind not in KINDS:
            raise DomainError(f"Unknown action {str(kind)[:20]!r}: use one of {', '.join(KINDS)}", "invalid_action")
        k = domain.leg_index(session.legs, leg)
        leg = session.legs[k]
        if not isinstance(effective_at, dt.datetime) or effective_at.tzinfo is None or effective_at <= cmd.now:
            raise DomainError("The cut (effective_at) must be an instant after now", "invalid_time")
        if session.t2 is not None and session.end_mode == Session.EndMode.TIMED and effective_at >= session.t2:
            raise DomainError(f"The cut must come before t2 ({domain.when(session.t2)})", "invalid_time")
        checked = _check_params(session, kind, leg, params)
        number = CorporateAction.objects.filter(session_id=session.id).count() + 1
        cmd.emit(
            "CorporateActionScheduled",
            {"action": number, "kind": kind, "leg": leg, "effective_at": _iso(effective_at), "params": checked},
        )
    return CorporateAction.objects.get(session_id=session_id, number=number)


def _check_params(session: Session, kind: str, leg: str, params: dict[str, Any]) -> dict[str, str]:
    """An action's parameters in their one written form, or DomainError naming what is wrong."""
    allowed = {"split": {"ratio"}, "dividend": {"amount"}, "merger": {"into", "ratio", "cash"}, "rename": {"to"}}
    extra = sorted(set(params) - allowed[kind])
    if extra:
        raise DomainError(f"A {kind} takes {', '.join(sorted(allowed[kind]))}, not {extra[0]!r}", "invalid_action")
    if kind == "split":
        ratio = rules.parse_ratio(params.get("ratio"), "split's ratio")
        if ratio == 1:
            raise DomainError("A split's ratio is not 1", "invalid_ratio")
        return {"ratio": rules.ratio_text(ratio)}
    if kind == "dividend":
        return {"amount": domain.price_str(domain.parse_price(params.get("amount"), "Dividend amount"))}
    if kind == "rename":
        to = domain.validate_legs([params.get("to"), *[x for x in session.legs if x != leg]])[0]
        return {"to": to}
    if ("cash" in params) == ("into" in params):
        raise DomainError("A merger takes either into (a leg, with ratio) or cash per unit", "invalid_action")
    if "cash" in params:
        return {"cash": domain.price_str(domain.parse_price(params["cash"], "Cash per unit"))}
    into = session.legs[domain.leg_index(session.legs, params["into"])]
    if into == leg:
        raise DomainError("A leg merges into another leg", "same_leg")
    return {"into": into, "ratio": rules.ratio_text(rules.parse_ratio(params.get("ratio"), "merger's ratio"))}


def actions_due() -> bool:
    """Whether some scheduled action's cut has come (one indexed read): the oracle then runs the scheduler
    before storing its next tick, so no tick after a cut is written at the old price level."""
    from ledger import clock

    return CorporateAction.objects.filter(
        status=CorporateAction.Status.SCHEDULED, effective_at__lte=clock.now()
    ).exists()


def apply_due_actions() -> list[tuple[str, str]]:
    """Apply every scheduled action whose cut has come, oldest cut first, each in its own command."""
    from ledger import clock

    due = CorporateAction.objects.filter(status=CorporateAction.Status.SCHEDULED, effective_at__lte=clock.now())
    outcomes = []
    for session_id, number in due.order_by("effective_at", "session_id", "number").values_list("session_id", "number"):
        try:
            applied = _apply(session_id, number)
        except DomainError as exc:
            outcomes.append((session_id, f"action {number} not applied: {exc.message}"))
            continue
        if applied:
            outcomes.append((session_id, f"action {number} applied"))
    return outcomes


@_retrying
def _apply(session_id: str, number: int) -> bool:
    with _command(session_id) as cmd:
        action = CorporateAction.objects.get(session_id=session_id, number=number)
        if action.status != CorporateAction.Status.SCHEDULED or action.effective_at > cmd.now:
            return False  # another process applied it first
        if cmd.session.status not in (Session.Status.OPEN, Session.Status.CLOSED, Session.Status.CREATED):
            return False
        _cancel_business_on(cmd, action.leg)
        cmd.emit("CorporateActionApplied", _applied(cmd, action))
    return True


def _cancel_business_on(cmd: _Command, leg: str) -> None:
    """The open RFQs on the leg and their live quotes, and the resting orders that give or get it, are
    cancelled at the cut: a rate agreed before a split is not a rate after it."""
    sid = cmd.session.id
    on_leg = RFQ.objects.filter(session_id=sid, status=RFQ.Status.OPEN)
    rfqs = sorted(
        set(on_leg.filter(give_leg=leg).values_list("id", flat=True))
        | set(on_leg.filter(get_leg=leg).values_list("id", flat=True))
    )
    for rfq_id in rfqs:
        live = Quote.objects.filter(rfq_id=rfq_id, status=Quote.Status.LIVE).order_by("id").values_list("id", flat=True)
        for quote_id in live:
            cmd.emit("QuoteWithdrawn", {"quote_id": quote_id, "rfq_id": rfq_id, "reason": "corporate_action"})
        cmd.emit("RFQCancelled", {"rfq_id": rfq_id, "reason": "corporate_action"})
    resting = Order.objects.filter(session_id=sid, status=Order.Status.RESTING)
    orders = resting.filter(give_leg=leg) | resting.filter(get_leg=leg)
    for order_id, user_id in orders.order_by("id").values_list("id", "participant__user_id"):
        cmd.emit("OrderCancelled", {"order_id": order_id, "user_id": user_id, "reason": "corporate_action"})


def _applied(cmd: _Command, action: CorporateAction) -> dict[str, Any]:
    """CorporateActionApplied's payload: what the rule makes of the holdings and prices now."""
    session = cmd.session
    matrix = projections.holdings_by_user(session.id)
    # The prices in force just before the cut (a tick stamped at or after it is at the new level already).
    vector, ticks = prices_at(session, action.effective_at - dt.timedelta(microseconds=1))
    made = rules.outcome(action.kind, action.leg, action.params, session.legs, session.q, matrix, vector)
    # The same rule on each holder's initial allocation as the actions so far carried it (it sums to q as
    # the holdings do): what P&L compares a payout with, had the holder never traded.
    initial = rules.outcome(
        action.kind, action.leg, action.params, session.legs, session.q, projections.initial_by_user(session.id), vector
    )
    made |= {"initial_deltas_by_id": initial["deltas_by_id"], "initial_cash_by_id": initial["cash_by_id"]}
    session.q = made["q_after"]  # the invariants at commit check the holdings against the new q
    return {
        "action": action.number,
        "kind": action.kind,
        "leg": action.leg,
        "at": _iso(cmd.now),
        "effective_at": _iso(action.effective_at),
        "prices": dict(zip(session.legs, vector, strict=True)),
        "ticks": ticks,
        "holdings_before": {str(u): list(row) for u, row in sorted(matrix.items())},
    } | made
