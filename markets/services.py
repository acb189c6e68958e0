"""The market's commands: one function per user intent, one database transaction each.

Every command: check permissions -> validate with the pure domain -> append event(s) to the ledger ->
apply them to the projection with the same code replay uses -> check the invariants -> commit.
Any failure raises a DomainError subclass and rolls everything back: nothing is written.

`actor` is the Django user acting; None means the system (a management command or the scheduler),
which is trusted with the organiser's powers.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, OperationalError, connection, transaction

from ledger import clock, feed, store
from ledger.store import ConcurrencyError
from markets import access, domain, projections, rows
from markets.errors import Conflict, DomainError, Forbidden, NotFound, StorageUnavailable, Unauthenticated
from markets.models import RFQ, Participant, Quote, Session, Trade, stream_name
from oracle import fixing as fixing_rules

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
MAX_QUOTE_TTL = 24 * 3600
DEFAULT_QUOTE_TTL = 60


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
def _command(session_id: str) -> Iterator[_Command]:
    """One transaction on one session's stream; invariants are checked before it commits."""
    with transaction.atomic():
        session = _get_session(session_id, for_update=True)
        cmd = _Command(session, clock.now())
        yield cmd
        if cmd.events:
            check_invariants(session.id, session.q)
            transaction.on_commit(feed.nudge)  # local browsers hear at once; others poll


def _get_session(session_id: str, *, for_update: bool = False) -> Session:
    session = rows.get_by_pk(Session, str(session_id), for_update=for_update)
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
    try:
        return Participant.objects.get(session=session, user=actor)
    except Participant.DoesNotExist:
        raise Forbidden(f"You have not joined session {session.id}", "not_a_participant") from None


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


def _row_id(value: object, what: str, code: str) -> int:
    """An id from the caller, written one way only (see domain.parse_id); anything else names nothing."""
    number = domain.parse_id(value)
    if number is None:
        raise NotFound(f"Unknown {what} {str(value)[:20]!r}", code)
    return number


def _next_id(model) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(model._meta.db_table)}")
        (last,) = cursor.fetchone()
    return (last or 0) + 1


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def tolerance_base_units() -> int:
    tol = Decimal(settings.INVARIANT_TOLERANCE)
    return int(tol.scaleb(domain.QTY_DP).to_integral_value())


_LEG_TOTALS_SQL = (
    'SELECT "leg_index", SUM("qty"), MIN("qty") FROM "markets_holding" WHERE "session_id" = %s GROUP BY "leg_index"'
)


def check_invariants(session_id: str, q: list[int]) -> None:
    """Invariants 1 and 2 on the projection as it would be committed: one aggregate per leg."""
    with connection.cursor() as cursor:
        cursor.execute(_LEG_TOTALS_SQL, [session_id])
        totals = {k: (int(total), int(low)) for k, total, low in cursor.fetchall()}
    if not totals:
        return  # not allocated yet
    domain.check_leg_totals(
        [totals.get(k, (0, 0))[0] for k in range(len(q))],
        [totals.get(k, (0, 0))[1] for k in range(len(q))],
        q,
        tolerance_base_units(),
    )


# ---------------------------------------------------------------- sessions and participants


@_retrying
def create_session(
    actor,
    *,
    session_id: str,
    legs: list[str],
    q: list[object],
    title: str = "",
    t1: dt.datetime | None = None,
    t2: dt.datetime | None = None,
    start_mode: str = Session.StartMode.IMMEDIATE,
    end_mode: str = Session.EndMode.MANUAL,
    allocation_mode: str = Session.AllocationMode.PRO_RATA,
    fixing_rule: dict | None = None,
    visibility: str = Session.Visibility.PUBLIC,
) -> Session:
    """Create a session; its creator joins as organiser. Needs the `markets.add_session` permission."""
    _require_user(actor)
    if actor is not None and not actor.has_perm("markets.add_session"):
        raise Forbidden("You are not allowed to create sessions (ask an admin for organiser rights)", "forbidden")
    if actor is None:
        raise Forbidden("A session needs an organiser: create it as a user", "forbidden")
    sid = str(session_id or "").strip()
    if not SESSION_ID.fullmatch(sid):
        raise DomainError(
            "Session id must be 1-64 letters, digits, - or _ (unique ignoring case)", "invalid_session_id"
        )
    symbols = domain.validate_legs(legs)
    basket = domain.validate_basket(q, symbols)
    if start_mode not in Session.StartMode.values:
        raise DomainError(f"start_mode must be one of {', '.join(Session.StartMode.values)}", "invalid_mode")
    if end_mode not in Session.EndMode.values:
        raise DomainError(f"end_mode must be one of {', '.join(Session.EndMode.values)}", "invalid_mode")
    if allocation_mode not in Session.AllocationMode.values:
        raise DomainError(f"allocation_mode must be one of {', '.join(Session.AllocationMode.values)}", "invalid_mode")
    if visibility not in Session.Visibility.values:
        raise DomainError(f"visibility must be one of {', '.join(Session.Visibility.values)}", "invalid_mode")
    for name, value in (("t1", t1), ("t2", t2)):
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            raise DomainError(f"{name} must be a date and time with a timezone", "invalid_time")
        try:
            if value is not None and not 1970 < value.astimezone(dt.UTC).year < 9999:
                raise OverflowError
        except OverflowError:
            raise DomainError(f"{name} is out of range (years 1971 to 9998)", "invalid_time") from None
    if start_mode == Session.StartMode.SCHEDULED and t1 is None:
        raise DomainError("A scheduled session needs t1 (when it opens)", "invalid_time")
    if end_mode == Session.EndMode.TIMED and t2 is None:
        raise DomainError("A timed session needs t2 (when it settles)", "invalid_time")
    if t1 is not None and t2 is not None and t2 <= t1:
        raise DomainError("t2 must be after t1", "invalid_time")
    now = clock.now()
    if t2 is not None and t2 <= now:
        raise DomainError(f"t2 ({domain.when(t2)}) is already past: choose a time ahead", "invalid_time")
    if end_mode == Session.EndMode.MANUAL and not settings.ALLOW_MANUAL_SETTLE:
        raise DomainError(
            "Manual settlement is disabled here (ALLOW_MANUAL_SETTLE=false): use end_mode=timed", "manual_disabled"
        )
    try:
        rule = fixing_rules.validate_rule(fixing_rule)
    except fixing_rules.InvalidRule as exc:
        raise DomainError(str(exc), "invalid_fixing_rule") from None
    with transaction.atomic():
        taken = Session.objects.filter(id__iexact=sid).values_list("id", flat=True).first()
        if taken is not None or store.head(stream_name(sid)) is not None:
            same = "" if taken in (None, sid) else f" as {taken} (ids are unique ignoring case)"
            raise Conflict(f"Session {sid} already exists{same}", "session_exists")
        stream = stream_name(sid)
        created = store.append(
            stream,
            "SessionCreated",
            {
                "session_id": sid,
                "title": str(title or "")[:200],
                "legs": symbols,
                "q": basket,
                "t1": _iso(t1),
                "t2": _iso(t2),
                "start_mode": start_mode,
                "end_mode": end_mode,
                "allocation_mode": allocation_mode,
                "fixing_rule": rule,
                "visibility": visibility,
                "created_by_id": actor.pk,
                "scales": {"qty_dp": domain.QTY_DP, "rate_dp": domain.RATE_DP, "price_dp": domain.PRICE_DP},
            },
            expected_version=0,
            at=now,
        )
        projections.apply(created)
        session = Session.objects.get(id=sid)
        cmd = _Command(session, now)
        cmd.emit("ParticipantJoined", _joined(actor, Participant.Role.ORGANISER))
        transaction.on_commit(feed.nudge)  # local browsers hear at once; others poll
    return Session.objects.get(id=sid)


def _joined(user, role: str) -> dict[str, Any]:
    """A ParticipantJoined payload: the user by immutable id; the name as it was, for display only."""
    return {"user_id": user.pk, "username": user.get_username(), "role": role}


@_retrying
def join_session(actor, session_id: str, role: str, *, username: str | None = None) -> Participant:
    """Join a created session as trader or maker; the organiser may also add another user by name."""
    _require_user(actor)
    if role not in (Participant.Role.TRADER, Participant.Role.MAKER):
        raise DomainError("Join as a trader or a maker", "invalid_role")
    with _command(session_id) as cmd:
        session = cmd.session
        if username is not None and (actor is None or username != actor.username):
            _require_organiser(session, actor)
            try:
                user = get_user_model().objects.get(username=username)
            except get_user_model().DoesNotExist:
                raise NotFound(f"No user named {username[:150]!r}", "user_not_found") from None
        elif actor is None:
            raise DomainError("Say which user joins", "invalid_user")
        else:
            user = actor
            if session.visibility != Session.Visibility.PUBLIC and not access.can_view(session, user):
                raise Forbidden(
                    f"Session {session.id} is for invited participants only: ask its organiser", "not_visible"
                )
        if not user.is_active:
            raise Conflict(f"{user.username} is deactivated: an inactive account cannot join", "user_inactive")
        if session.status != Session.Status.CREATED:
            raise Conflict("Participants can join only before the session opens", "session_not_joinable")
        if Participant.objects.filter(session=session, user=user).exists():
            raise Conflict(f"{user.username} has already joined {session.id}", "already_joined")
        cmd.emit("ParticipantJoined", _joined(user, role))
    return Participant.objects.get(session_id=session.id, user=user)


def _holders(session: Session) -> list[tuple[int, str]]:
    """(user id, name) of the session's traders and makers, ordered by name (the pro-rata order)."""
    return list(
        Participant.objects.filter(session=session, role__in=domain.HOLDER_ROLES)
        .order_by("username", "user_id")
        .values_list("user_id", "username")
    )


def _open(cmd: _Command, allocation: Mapping[str, list] | None) -> None:
    session = cmd.session
    holders = _holders(session)
    names = [name for _, name in holders]
    if allocation is not None or session.allocation_mode == Session.AllocationMode.CUSTOM:
        if allocation is None:
            raise DomainError("This session needs a custom allocation matrix to open", "invalid_allocation")
        by_name = domain.validate_custom_allocation(allocation, session.q, session.legs, names)
        mode = Session.AllocationMode.CUSTOM
    else:
        by_name = domain.pro_rata(session.q, names)
        mode = Session.AllocationMode.PRO_RATA
    matrix = {user_id: by_name[name] for user_id, name in holders}
    domain.check_conservation(matrix, session.q)
    domain.check_non_negative(matrix)
    cmd.emit("InitialAllocationAssigned", {"mode": mode, "holdings_by_id": {str(u): r for u, r in matrix.items()}})
    cmd.emit("SessionOpened", {})


@_retrying
def open_session(actor, session_id: str, *, allocation: Mapping[str, list] | None = None) -> Session:
    """Assign the initial allocation and open trading (organiser; immediate sessions, or early)."""
    with _command(session_id) as cmd:
        _require_organiser(cmd.session, actor)
        if cmd.session.status != Session.Status.CREATED:
            raise Conflict(f"Session {cmd.session.id} is already {cmd.session.status}", "already_open")
        if actor is not None and cmd.session.start_mode == Session.StartMode.SCHEDULED:
            raise Conflict("This session opens by itself at t1", "scheduled_start")
        _require_before_t2(cmd.session, cmd.now)
        _open(cmd, allocation)
    return _get_session(session_id)


def _require_before_t2(session: Session, now: dt.datetime) -> None:
    if session.end_mode == Session.EndMode.TIMED and session.t2 is not None and now >= session.t2:
        raise Conflict(
            f"Session {session.id} can no longer open: its t2 ({domain.when(session.t2)}) has passed",
            "trading_closed",
        )


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
        t2 = session.t2
        if session.end_mode == Session.EndMode.TIMED and t2 is not None and cmd.now >= t2:
            reason = f"t2 ({domain.when(t2)}) passed before the session could open (nothing ran at t1 to open it)"
            cmd.emit("SessionCancelled", {"reason": reason})
            return f"cancelled: {reason}"
        _open(cmd, None)
    return "opened"


@_retrying
def cancel_session(actor, session_id: str, reason: str = "") -> Session:
    """The organiser calls off a session that has not opened (nothing was allocated, nobody traded)."""
    with _command(session_id) as cmd:
        _require_organiser(cmd.session, actor)
        if cmd.session.status != Session.Status.CREATED:
            raise Conflict(
                f"Session {cmd.session.id} is {cmd.session.status}: only a session not yet open can be cancelled",
                "not_cancellable",
            )
        cmd.emit("SessionCancelled", {"reason": str(reason or "cancelled by the organiser")[:500]})
    return _get_session(session_id)


# ---------------------------------------------------------------- RFQs and quotes


@_retrying
def request_rfq(actor, session_id: str, give_leg: str, get_leg: str, quantity: object) -> RFQ:
    """A taker asks to give `quantity` of give_leg for get_leg."""
    qty = domain.parse_qty(quantity)
    with _command(session_id) as cmd:
        session = cmd.session
        me = _participant(session, actor) if actor is not None else None
        if me is None:
            raise Forbidden("RFQs are requested by a participant", "forbidden")
        gi = domain.leg_index(session.legs, give_leg)
        ge = domain.leg_index(session.legs, get_leg)
        if gi == ge:
            raise DomainError("The give leg and the get leg must differ", "same_leg")
        if not me.holds:
            raise Forbidden("Only traders and makers request quotes", "forbidden")
        _require_trading(session, cmd.now)
        held = me.holdings.get(leg_index=gi).qty
        if held < qty:
            raise DomainError(
                f"Insufficient inventory: you hold {domain.qty_str(held)} {session.legs[gi]}, "
                f"not {domain.qty_str(qty)}",
                "insufficient_inventory",
                409,
            )
        rfq_id = _next_id(RFQ)
        cmd.emit(
            "RFQRequested",
            {
                "rfq_id": rfq_id,
                "taker_id": me.user_id,
                "give_leg": session.legs[gi],
                "get_leg": session.legs[ge],
                "quantity": qty,
            },
        )
    return RFQ.objects.get(id=rfq_id)


def _get_rfq(rfq_id: object) -> RFQ:
    try:
        return RFQ.objects.select_related("session", "taker").get(id=_row_id(rfq_id, "RFQ", "rfq_not_found"))
    except RFQ.DoesNotExist:
        raise NotFound(f"Unknown RFQ {str(rfq_id)[:20]!r}", "rfq_not_found") from None


def _get_quote(quote_id: object) -> Quote:
    try:
        return Quote.objects.select_related("rfq", "maker", "rfq__taker").get(
            id=_row_id(quote_id, "quote", "quote_not_found")
        )
    except Quote.DoesNotExist:
        raise NotFound(f"Unknown quote {str(quote_id)[:20]!r}", "quote_not_found") from None


@_retrying
def provide_quote(actor, rfq_id: object, rate: object, ttl_seconds: object = DEFAULT_QUOTE_TTL) -> Quote:
    """A maker quotes `rate` units of the get leg per unit of the give leg, live for ttl_seconds."""
    rate_base = domain.parse_rate(rate)
    try:
        ttl = int(str(ttl_seconds))
    except ValueError:
        raise DomainError("The quote's lifetime must be a whole number of seconds", "invalid_ttl") from None
    if not 1 <= ttl <= MAX_QUOTE_TTL:
        raise DomainError(f"The quote's lifetime must be 1 to {MAX_QUOTE_TTL} seconds", "invalid_ttl")
    rfq = _get_rfq(rfq_id)
    with _command(rfq.session_id) as cmd:
        rfq = _get_rfq(rfq_id)
        me = _participant(cmd.session, actor) if actor is not None else None
        if me is None or me.role != Participant.Role.MAKER:
            raise Forbidden("Only market makers can quote", "not_maker")
        if rfq.taker_id == me.id:
            raise Forbidden("You cannot quote on your own RFQ", "own_rfq")
        _require_trading(cmd.session, cmd.now)
        if rfq.status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {rfq.id} is {rfq.status}: it takes no more quotes", "rfq_closed")
        receive = domain.trade_receive(rfq.quantity, rate_base)
        if receive <= 0:
            raise DomainError("At this rate the trade would deliver 0 units: quote a higher rate", "trade_too_small")
        held = me.holdings.get(leg_index=domain.leg_index(cmd.session.legs, rfq.get_leg)).qty
        if held < receive:  # checked again at accept: the holding may change in between
            raise DomainError(
                f"Insufficient inventory: you hold {domain.qty_str(held)} {rfq.get_leg}; at rate "
                f"{domain.rate_str(rate_base)} this quote would deliver {domain.qty_str(receive)} {rfq.get_leg}",
                "insufficient_inventory",
                409,
            )
        quote_id = _next_id(Quote)
        expires = cmd.now + dt.timedelta(seconds=ttl)
        cmd.emit(
            "QuoteProvided",
            {
                "quote_id": quote_id,
                "rfq_id": rfq.id,
                "maker_id": me.user_id,
                "rate": rate_base,
                "expires_at": _iso(expires),
            },
        )
    return Quote.objects.get(id=quote_id)


@_retrying
def withdraw_quote(actor, quote_id: object) -> Quote:
    quote = _get_quote(quote_id)
    with _command(quote.rfq.session_id) as cmd:
        quote = _get_quote(quote_id)
        if actor is not None and _participant(cmd.session, actor).id != quote.maker_id:
            raise Forbidden("Only the maker who gave a quote can withdraw it", "not_your_quote")
        _require_trading(cmd.session, cmd.now)
        if quote.status not in (Quote.Status.LIVE, Quote.Status.EXPIRED):
            raise Conflict(f"Quote {quote.id} is {quote.status}: nothing to withdraw", "quote_not_live")
        if quote.status == Quote.Status.EXPIRED or quote.expires_at <= cmd.now:
            raise Conflict(
                f"Quote {quote.id} expired at {quote.expires_at:%H:%M:%S}: nothing to withdraw", "quote_expired"
            )
        cmd.emit("QuoteWithdrawn", {"quote_id": quote.id, "rfq_id": quote.rfq_id})
    return _get_quote(quote_id)


@_retrying
def cancel_rfq(actor, rfq_id: object) -> RFQ:
    rfq = _get_rfq(rfq_id)
    with _command(rfq.session_id) as cmd:
        rfq = _get_rfq(rfq_id)
        if actor is not None and _participant(cmd.session, actor).id != rfq.taker_id:
            raise Forbidden("Only the RFQ's taker can cancel it", "not_your_rfq")
        _require_trading(cmd.session, cmd.now)
        if rfq.status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {rfq.id} is already {rfq.status}", "rfq_closed")
        cmd.emit("RFQCancelled", {"rfq_id": rfq.id})
    return _get_rfq(rfq_id)


class _Acceptance(NamedTuple):
    """The quote, its RFQ and both parties as the accept reads them: one joined row."""

    session_id: str
    quote_id: int
    quote_status: str
    expires_at: dt.datetime
    rate: int
    maker_id: int
    maker_user_id: int
    rfq_id: int
    rfq_status: str
    taker_id: int
    taker_user_id: int
    give_leg: str
    get_leg: str
    quantity: int


_ACCEPTANCE_SQL = (
    'SELECT r."session_id", q."id", q."status", q."expires_at", q."rate", q."maker_id", m."user_id", r."id", r."status", '
    'r."taker_id", t."user_id", r."give_leg", r."get_leg", r."quantity" '
    'FROM "markets_quote" q JOIN "markets_rfq" r ON r."id" = q."rfq_id" '
    'JOIN "markets_participant" t ON t."id" = r."taker_id" JOIN "markets_participant" m ON m."id" = q."maker_id" '
    'WHERE q."id" = %s'
)
_TWO_ROWS_SQL = (
    'SELECT "participant_id", "qty" FROM "markets_holding" WHERE "participant_id" IN (%s, %s) '
    'ORDER BY "participant_id", "leg_index"'
)


def _acceptance(quote_id: object) -> _Acceptance:
    """Accepting is the hot path: one plain statement instead of four ORM queries (see markets/rows.py)."""
    qid = domain.parse_id(quote_id)
    row = None
    if qid is not None:
        with connection.cursor() as cursor:
            cursor.execute(_ACCEPTANCE_SQL, [qid])
            row = cursor.fetchone()
    if row is None:
        raise NotFound(f"Unknown quote {str(quote_id)[:20]!r}", "quote_not_found")
    found = _Acceptance(*row)
    expires = found.expires_at
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    if expires.tzinfo is None:  # SQLite keeps UTC without a zone
        expires = expires.replace(tzinfo=dt.UTC)
    return found._replace(expires_at=expires)


def _two_rows(a: int, b: int) -> tuple[list[int], list[int]]:
    """Both parties' holdings, in leg order, in one statement."""
    rows: dict[int, list[int]] = {a: [], b: []}
    with connection.cursor() as cursor:
        cursor.execute(_TWO_ROWS_SQL, [a, b])
        for participant_id, qty in cursor.fetchall():
            rows[participant_id].append(qty)
    return rows[a], rows[b]


@_retrying
def accept_quote(actor, quote_id: object) -> Trade:
    """The RFQ's taker accepts a live quote: both inventories are checked now, in this transaction."""
    _require_user(actor)
    with _command(_acceptance(quote_id).session_id) as cmd:
        found = _acceptance(quote_id)  # again, under the lock: it may have changed meanwhile
        session = cmd.session
        if actor is not None and actor.pk != found.taker_user_id:
            _participant(session, actor)  # "you have not joined" is the clearer refusal when it applies
            raise Forbidden("Only the RFQ's taker can accept its quotes", "not_your_rfq")
        _require_trading(session, cmd.now)
        if found.rfq_status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {found.rfq_id} is already {found.rfq_status}", "rfq_closed")
        if found.quote_status not in (Quote.Status.LIVE, Quote.Status.EXPIRED):
            raise Conflict(
                f"Quote {found.quote_id} is {found.quote_status}: it can no longer be accepted", "quote_not_live"
            )
        if found.quote_status == Quote.Status.EXPIRED or found.expires_at <= cmd.now:
            raise Conflict(f"Quote {found.quote_id} expired at {found.expires_at:%H:%M:%S}", "quote_expired")
        taker_row, maker_row = _two_rows(found.taker_id, found.maker_id)
        move = domain.plan_trade(
            session.legs, found.give_leg, found.get_leg, found.quantity, found.rate, taker_row, maker_row
        )
        taker_deltas, maker_deltas = move.deltas(len(session.legs))
        domain.check_zero_sum(taker_deltas, maker_deltas)
        trade_id = _next_id(Trade)
        event = cmd.emit(
            "TradeExecuted",
            {
                "trade_id": trade_id,
                "rfq_id": found.rfq_id,
                "quote_id": found.quote_id,
                "taker_id": found.taker_user_id,
                "maker_id": found.maker_user_id,
                "give_leg": found.give_leg,
                "get_leg": found.get_leg,
                "give_qty": move.give_qty,
                "get_qty": move.get_qty,
                "rate": found.rate,
                "taker_deltas": taker_deltas,
                "maker_deltas": maker_deltas,
            },
        )
    # The row just committed, as the projection wrote it (no need to read it back).
    trade = Trade(
        id=trade_id,
        session_id=session.id,
        rfq_id=found.rfq_id,
        quote_id=found.quote_id,
        taker_id=found.taker_id,
        maker_id=found.maker_id,
        give_leg=found.give_leg,
        get_leg=found.get_leg,
        give_qty=move.give_qty,
        get_qty=move.get_qty,
        rate=found.rate,
        executed_at=event.at,
        seq=event.seq,
    )
    trade._state.adding = False
    trade._state.db = connection.alias
    return trade


# ---------------------------------------------------------------- settlement


@_retrying
def settle_session(
    actor, session_id: str, *, prices: Mapping[str, object] | None = None, fixing_at: dt.datetime | None = None
):
    """Settle at S_t2: given prices (manual), or the oracle's fixing at t2 (timed) / now (manual).

    `fixing_at` lets a manual session settle at the fixing the organiser was shown (an instant in
    the past, after opening), so a tick arriving between preview and confirm changes nothing.
    payout_i = x_i . S_t2, and sum payouts == q . S_t2 is checked exactly before commit. A timed session
    whose trading has not been recorded as closed yet is closed in the same command (TradingClosed).
    """
    with _command(session_id) as cmd:
        session = cmd.session
        _require_organiser(session, actor)
        if session.status == Session.Status.SETTLED:
            raise Conflict(f"Session {session.id} is already settled", "already_settled")
        if session.status not in (Session.Status.OPEN, Session.Status.CLOSED):
            raise Conflict(f"Session {session.id} is not open: only an open session settles", "session_not_open")
        timed = session.end_mode == Session.EndMode.TIMED
        if timed and cmd.now < session.t2:
            raise Conflict(f"Session {session.id} settles by itself at t2 ({domain.when(session.t2)})", "not_due")
        if (prices is not None or not timed) and not settings.ALLOW_MANUAL_SETTLE:
            raise Forbidden("Manual settlement is disabled (ALLOW_MANUAL_SETTLE=false)", "manual_disabled")
        if prices is not None:
            price_vector, fixing = _manual_prices(session, prices)
        else:
            at = session.t2 if timed else cmd.now
            if fixing_at is not None and not timed:
                if fixing_at.tzinfo is None or not (session.opened_at or cmd.now) <= fixing_at <= cmd.now:
                    raise DomainError("The fixing time must lie between the opening and now", "invalid_time")
                at = fixing_at
            taken = _fixing(session, at)
            price_vector = [taken.prices[leg] for leg in session.legs]
            fixing = {"rule": taken.rule, "at": _iso(taken.at), "ticks": taken.ticks, "source": "oracle"}
        _close_trading(cmd)
        _settle(cmd, price_vector, fixing)
    return _get_session(session_id)


def _fixing(session: Session, at: dt.datetime) -> fixing_rules.Fixing:
    try:
        return fixing_rules.take_fixing(session.id, session.legs, at, session.fixing_rule)
    except fixing_rules.MissingPrice as exc:
        raise Conflict(f"Cannot settle {session.id}: {exc}", "missing_price") from None


def _close_trading(cmd: _Command) -> None:
    """Record that trading in a timed session stopped at t2 (its open RFQs and live quotes lapse)."""
    session = cmd.session
    if session.status == Session.Status.OPEN and session.phase(cmd.now) == Session.Status.CLOSED:
        cmd.emit("TradingClosed", {"at": _iso(session.t2)})
        session.status = Session.Status.CLOSED


def _manual_prices(session: Session, prices: Mapping[str, object]) -> tuple[list[int], dict]:
    if not isinstance(prices, Mapping):
        raise DomainError("Prices map each leg to a price", "invalid_price")
    given = domain.leg_map(session.legs, prices, "price")
    missing = [leg for leg in session.legs if leg not in given]
    if missing:
        raise DomainError(f"No price given for {', '.join(missing)}", "missing_price")
    vector = [domain.parse_price(given[leg], f"Price of {leg}") for leg in session.legs]
    return vector, {"rule": {"rule": "manual"}, "at": None, "ticks": {}, "source": "manual"}


def _settle(cmd: _Command, prices: list[int], fixing: dict) -> None:
    session = cmd.session
    matrix = projections.holdings_by_user(session.id)
    paid = domain.payouts(matrix, prices)
    domain.check_settlement_sum(paid, session.q, prices)
    cmd.emit(
        "SessionSettled",
        {
            "prices": dict(zip(session.legs, prices, strict=True)),
            "fixing": fixing,
            "payouts_by_id": {str(u): domain.money_str(v) for u, v in paid.items()},
            "total": domain.money_str(sum(paid.values())),
            "expected": domain.money_str(domain.payout(session.q, prices)),
        },
    )


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
        ids = sorted(
            Quote.objects.filter(
                rfq__session_id=session_id, status=Quote.Status.LIVE, expires_at__lte=cmd.now
            ).values_list("id", flat=True)
        )
        if ids:
            cmd.emit("QuotesExpired", {"quote_ids": ids})
        return len(ids)


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
            if exc.code == "missing_price":
                _record_waiting(sid, exc.message)
            outcomes.append((sid, f"not settled: {exc.message}"))
    return outcomes


def run_due() -> list[tuple[str, str]]:
    """Everything the clock makes due, in order: open scheduled sessions past t1, expire quotes, close
    trading at t2, settle timed sessions at their fixing. Run by `run_oracle` and `settle --due`."""
    outcomes: list[tuple[str, str]] = []
    for step in (open_due_sessions, expire_due_quotes, close_due_sessions, settle_due_sessions):
        try:
            outcomes.extend(step())
        except (DomainError, OperationalError) as exc:
            outcomes.append(("*", f"{step.__name__} failed: {getattr(exc, 'message', exc)}"))
    return outcomes


@_retrying
def _record_waiting(session_id: str, reason: str) -> None:
    with _command(session_id) as cmd:
        if cmd.session.status not in (Session.Status.OPEN, Session.Status.CLOSED):
            return
        _close_trading(cmd)
        if cmd.session.waiting_reason != reason[:500]:
            cmd.emit("SettlementWaiting", {"reason": reason[:500]})
