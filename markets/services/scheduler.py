"""What the clock makes due, as commands: open scheduled sessions at t1 (late only while t2 is ahead),
cancel timed sessions that did not open by t2, record quote expiries, liquidate positions whose margin
fell below zero (bounded shorting), close trading at t2, settle timed sessions at their fixing. `run_due` does all of
it; `run_oracle` calls it once a second, `settle --due` from cron. None of it decides a time rule: the
commands refuse by the clock already; this records in the log what the clock made true.
"""

from __future__ import annotations

from django.db import OperationalError

from ledger import clock
from markets import domain
from markets.errors import Conflict, DomainError
from markets.models import RFQ, Quote, Session
from markets.services.actions import apply_due_actions
from markets.services.batches import clear_due_batches
from markets.services.command import _command, _retrying
from markets.services.margin import liquidate_due_sessions
from markets.services.sessions import _open
from markets.services.settlement import _close_trading, _record_waiting, expire_quotes, settle_session


def open_due_sessions() -> list[tuple[str, str]]:
    """Open every scheduled session whose t1 has passed, late if nothing ran at t1, but only while its
    t2 is still ahead; one whose t2 passed first is cancelled (it never traded). Returns (session,
    outcome) pairs."""
    now = clock.now()
    outcomes = []
    due = Session.objects.filter(
        status=Session.Status.CREATED, start_mode=Session.StartMode.SCHEDULED, t1__lte=now
    ).values_list("id", flat=True)
    for sid in list(due):
        try:
            outcome = _open_due(sid)
        except DomainError as exc:
            outcome = f"not opened: {exc.message}"
        if outcome:
            outcomes.append((sid, outcome))
    return outcomes


@_retrying
def _open_due(session_id: str) -> str:
    with _command(session_id) as cmd:
        session = cmd.session
        if session.status != Session.Status.CREATED:
            return ""
        if session.phase(cmd.now) == Session.Status.CANCELLED:  # its t2 passed before it could open
            reason = domain.unopened_reason(session.start_mode, session.t2)
            cmd.emit("SessionCancelled", {"reason": reason})
            return f"cancelled: {reason}"
        _open(cmd, None)
    return "opened"


def cancel_unopened_sessions() -> list[tuple[str, str]]:
    """Cancel every timed session still not open at its t2 (scheduled or opened by hand): it can no longer
    open, and every reader has called it cancelled since t2 (`Session.phase`). Returns (session, outcome)."""
    now = clock.now()
    due = Session.objects.filter(status=Session.Status.CREATED, end_mode=Session.EndMode.TIMED, t2__lte=now)
    outcomes = []
    for sid in list(due.values_list("id", flat=True)):
        reason = _cancel_unopened(sid)
        if reason:
            outcomes.append((sid, f"cancelled: {reason}"))
    return outcomes


@_retrying
def _cancel_unopened(session_id: str) -> str:
    with _command(session_id) as cmd:
        session = cmd.session
        if session.phase(cmd.now) != Session.Status.CANCELLED or session.status != Session.Status.CREATED:
            return ""
        reason = domain.unopened_reason(session.start_mode, session.t2)
        cmd.emit("SessionCancelled", {"reason": reason})
        return reason


def close_due_sessions() -> list[tuple[str, str]]:
    """Record TradingClosed for every open timed session at or past t2 (the commands already refuse
    trading there by the clock; this closes its open RFQs and live quotes in the log)."""
    now = clock.now()
    outcomes = []
    due = Session.objects.filter(status=Session.Status.OPEN, end_mode=Session.EndMode.TIMED, t2__lte=now)
    for sid in list(due.values_list("id", flat=True)):
        if _close_due(sid):
            outcomes.append((sid, "trading closed"))
    return outcomes


@_retrying
def _close_due(session_id: str) -> bool:
    with _command(session_id) as cmd:
        _close_trading(cmd)
        return bool(cmd.events)


def expire_due_quotes() -> list[tuple[str, str]]:
    """Record QuotesExpired for live quotes past their expiry, one event per session, so the stored
    status says "expired" (readers and commands go by the clock in the meantime)."""
    now = clock.now()
    due = (
        Quote.objects.filter(status=Quote.Status.LIVE, expires_at__lte=now, rfq__status=RFQ.Status.OPEN)
        .values_list("rfq__session_id", flat=True)
        .distinct()
    )
    outcomes = []
    for sid in sorted(due):
        count = _expire_quotes(sid)
        if count:
            outcomes.append((sid, f"{count} quote{'s' if count > 1 else ''} expired"))
    return outcomes


@_retrying
def _expire_quotes(session_id: str) -> int:
    with _command(session_id) as cmd:
        if cmd.session.status != Session.Status.OPEN:
            return 0
        ends = cmd.session.trading_ends
        # A quote still live at t2 lapsed then, with trading (TradingClosed), even if its expiry came after.
        return expire_quotes(cmd, min(cmd.now, ends) if ends is not None else cmd.now)


def settle_due_sessions() -> list[tuple[str, str]]:
    """Settle every timed session past t2 with its fixing. A session with no price for a leg is not
    settled: its trading is closed and it records why (SettlementWaiting) so the organiser sees it."""
    now = clock.now()
    outcomes = []
    due = Session.objects.filter(
        status__in=(Session.Status.OPEN, Session.Status.CLOSED), end_mode=Session.EndMode.TIMED, t2__lte=now
    )
    for sid in list(due.values_list("id", flat=True)):
        try:
            settle_session(None, sid)
            outcomes.append((sid, "settled"))
        except Conflict as exc:
            if exc.code in ("missing_price", "window_open"):
                _record_waiting(sid, exc.message)
            outcomes.append((sid, f"not settled: {exc.message}"))
    return outcomes


def run_due() -> list[tuple[str, str]]:
    """Everything the clock makes due, in order: open scheduled sessions past t1, cancel timed sessions
    not open at t2, expire quotes, apply corporate actions at their cut, liquidate, cut due batches, close
    trading at t2, settle timed sessions at their fixing. Run by `run_oracle` and `settle --due`."""
    outcomes: list[tuple[str, str]] = []
    steps = (
        open_due_sessions,
        cancel_unopened_sessions,
        expire_due_quotes,
        apply_due_actions,
        liquidate_due_sessions,
        clear_due_batches,
        close_due_sessions,
        settle_due_sessions,
    )
    for step in steps:
        try:
            outcomes.extend(step())
        except (DomainError, OperationalError) as exc:
            outcomes.append(("*", f"{step.__name__} failed: {getattr(exc, 'message', exc)}"))
    return outcomes
