"""The envelope every command runs in: one transaction on one session's stream, its lock, its clock,
the events it emits (appended and projected by the same code replay uses), the invariants checked before
it commits, and a retry when another writer won the race. The permission and time rules every command
shares live here too.

`actor` is the Django user acting; None means the system (a management command or the scheduler),
which is trusted with the organiser's powers.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction

from ledger import clock, store, turns
from ledger.store import ConcurrencyError
from markets import domain, projections, sql
from markets.errors import Conflict, Forbidden, NotFound, StorageUnavailable, Unauthenticated
from markets.models import Participant, Session

log = logging.getLogger(__name__)


def _retrying[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command again when another writer won the race for the same stream version or id.

    The failed attempt rolled back completely, so a retry is safe; it re-reads the new state.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(5):
            try:
                return fn(*args, **kwargs)
            except ConcurrencyError:
                if attempt == 4:
                    raise Conflict("The market moved while this was processed; please try again", "busy") from None
            except OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    if attempt == 4:
                        raise Conflict("The database is busy; please try again", "busy") from None
                    continue
                problem = store.storage_problem(exc)
                if problem:
                    log.error("%s refused by the database: %s", fn.__name__, problem)
                    raise StorageUnavailable(f"Not saved: {problem}. Nothing was changed.") from exc
                raise
        raise AssertionError("unreachable")

    return wrapper


class _Command:
    """The open transaction of one command on one session: emits events and keeps the version."""

    def __init__(self, session: Session, now: dt.datetime) -> None:
        self.session = session
        self.now = now
        self.events: list = []

    def emit(self, type_: str, payload: dict[str, Any]):
        event = store.append(self.session.stream, type_, payload, expected_version=self.session.version, at=self.now)
        try:
            projections.apply(event)
        except IntegrityError as exc:  # an id taken by a concurrent writer: the whole command rolls back
            raise ConcurrencyError(str(exc)) from exc
        self.session.version = event.version
        self.session.last_seq = event.seq
        self.events.append(event)
        return event


@contextmanager
def _command(session_id: str | None = None, *, lock: Callable[[], Session] | None = None) -> Iterator[_Command]:
    """One transaction on one session's stream; invariants are checked before it commits. The session is
    `session_id`, or what `lock()` finds (and locks) inside the transaction."""
    with turns.writer_turn(), transaction.atomic():
        session = lock() if lock is not None else _get_session(session_id, for_update=True)
        cmd = _Command(session, clock.now())
        yield cmd
        if cmd.events:
            caps = session.margin.caps(session.q) if session.shorting else None
            check_invariants(session.id, session.q, caps)
            if session.trades_by_batch:
                check_reservations(session.id, caps)


def _get_session(session_id: str, *, for_update: bool = False) -> Session:
    sid = str(session_id)
    # An id that cannot exist names nothing, before any query (a NUL would not even reach PostgreSQL).
    session = sql.get_by_pk(Session, sid, for_update=for_update) if domain.SESSION_ID.fullmatch(sid) else None
    if session is None:
        raise NotFound(f"Unknown session {str(session_id)[:64]!r}", "session_not_found")
    return session


def _require_user(actor) -> None:
    if actor is None:
        return
    if not getattr(actor, "is_authenticated", False):
        raise Unauthenticated("Sign in first", "unauthenticated")


def _participant(session: Session, actor) -> Participant:
    _require_user(actor)
    me = sql.participant_of(session.id, actor.pk)
    if me is None:
        raise Forbidden(f"You have not joined session {session.id}", "not_a_participant")
    return me


def _require_organiser(session: Session, actor) -> None:
    if actor is None:
        return
    if _participant(session, actor).role != Participant.Role.ORGANISER:
        raise Forbidden("Only the session's organiser can do this", "not_organiser")


def _require_trading(session: Session, now: dt.datetime) -> None:
    """Trading (RFQs, quotes, accepts, cancels, withdrawals) needs an open session before its t2: the
    rule is read here, inside the command's transaction, against the command's clock."""
    phase = session.phase(now)
    if phase == Session.Status.CREATED:
        raise Conflict(f"Session {session.id} is not open for trading yet", "session_not_open")
    if phase == Session.Status.SETTLED:
        raise Conflict(f"Session {session.id} is settled: no more trading", "session_settled")
    if phase == Session.Status.CANCELLED:
        raise Conflict(f"Session {session.id} was cancelled: it never traded", "session_cancelled")
    if phase == Session.Status.CLOSED:
        raise Conflict(
            f"Trading in {session.id} closed at t2 ({domain.when(session.t2)}): it settles at the fixing",
            "trading_closed",
        )


def _require_unpaused(session: Session) -> None:
    """While the organiser has trading paused, nothing new is asked, quoted or accepted: read beside the
    t2 rule, inside the command's transaction (a pause that commits first wins). Cancelling an RFQ and
    withdrawing a quote stay allowed (they take risk off the board), and so does settling."""
    if session.paused_at is not None:
        why = f": {session.pause_reason}" if session.pause_reason else ""
        raise Conflict(f"Trading is paused by the organiser{why}", "trading_paused")


def _row_id(value: object, what: str, code: str) -> int:
    """An id from the caller, written one way only (see domain.parse_id); anything else names nothing."""
    number = domain.parse_id(value)
    if number is None:
        raise NotFound(f"Unknown {what} {str(value)[:20]!r}", code)
    return number


def _next_id(model) -> int:
    return sql.next_id(model)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def tolerance_base_units() -> int:
    tol = Decimal(settings.INVARIANT_TOLERANCE)
    return int(tol.scaleb(domain.QTY_DP).to_integral_value())


def check_invariants(session_id: str, q: list[int], caps: list[int] | None = None) -> None:
    """Invariants 1 and 2 on the projection as it would be committed: one aggregate per leg. With shorting
    (`caps`, the short limit per leg), 2 reads: nobody below minus the cap, the pool's shorts within it."""
    totals = sql.leg_totals(session_id)
    if not totals:
        return  # not allocated yet
    domain.check_leg_totals(
        [totals.get(k, (0, 0, 0))[0] for k in range(len(q))],
        [totals.get(k, (0, 0, 0))[1] for k in range(len(q))],
        q,
        tolerance_base_units(),
        caps,
        [totals.get(k, (0, 0, 0))[2] for k in range(len(q))],
    )


def check_reservations(session_id: str, caps: list[int] | None = None) -> None:
    """Batch sessions: no holding reserves less than nothing or more than it holds (plus its short limit:
    its resting orders can always give what they promise), on the projection as it would be committed."""
    from markets import batch_sql

    bad = batch_sql.reservation_breaches(session_id, caps)
    if bad:
        raise domain.InvariantViolation(f"reservations out of bounds (participant, leg, held, reserved): {bad[:3]}")
