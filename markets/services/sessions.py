"""Sessions and who is in them: create, join, open (allocate), cancel; the organiser's pause of trading."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from ledger import clock, store
from markets import access, domain, projections
from markets.domain import margin, orders
from markets.errors import Conflict, DomainError, Forbidden, NotFound
from markets.models import NAME_MAX, Participant, Session, stream_name
from markets.services.command import (
    _Command,
    _command,
    _get_session,
    _iso,
    _require_organiser,
    _require_trading,
    _require_user,
    _retrying,
)
from oracle import fixing as fixing_rules


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
    mechanism: str = Session.Mechanism.RFQ,
    batch_seconds: object = None,
    batch_band: object = None,
    max_orders: object = None,
    min_order: object = None,
    short_limit: object = None,
    margin_band: object = None,
    initial_margin: object = None,
) -> Session:
    """Create a session; its creator joins as organiser. Needs the `markets.add_session` permission.
    `mechanism` is how it trades: by RFQ, by batch auction (with its settings), or both. `short_limit`
    (with `margin_band` and `initial_margin`) lets holdings go short within a margin rule; off by default."""
    _require_user(actor)
    if actor is not None and not actor.has_perm("markets.add_session"):
        raise Forbidden("You are not allowed to create sessions (ask an admin for organiser rights)", "forbidden")
    if actor is None:
        raise Forbidden("A session needs an organiser: create it as a user", "forbidden")
    sid = str(session_id or "").strip()
    if not domain.SESSION_ID.fullmatch(sid):
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
    trading = orders.batch_settings(mechanism, batch_seconds, batch_band, max_orders, min_order)
    shorting = margin.margin_settings(short_limit, margin_band, initial_margin)
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
            }
            | trading.payload()
            | shorting.payload(),
            expected_version=0,
            at=now,
        )
        projections.apply(created)
        session = Session.objects.get(id=sid)
        cmd = _Command(session, now)
        cmd.emit("ParticipantJoined", _joined(actor, Participant.Role.ORGANISER))
    return Session.objects.get(id=sid)


def _joined(user, role: str) -> dict[str, Any]:
    """A ParticipantJoined payload: the user by immutable id; the account's username and the name people
    will see (a guest's name as typed, an account's full name, else its username), as they were."""
    name = (user.get_full_name() or user.get_username())[:NAME_MAX]
    return {"user_id": user.pk, "username": user.get_username(), "name": name, "role": role}


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
        if session.phase(cmd.now) == Session.Status.CANCELLED:  # recorded, or its t2 passed before it opened
            raise Conflict(_cancelled_note(session), "session_not_joinable")
        if session.status != Session.Status.CREATED:
            raise Conflict("Participants can join only before the session opens", "session_not_joinable")
        if Participant.objects.filter(session=session, user=user).exists():
            raise Conflict(f"{user.username} has already joined {session.id}", "already_joined")
        cmd.emit("ParticipantJoined", _joined(user, role))
    return Participant.objects.get(session_id=session.id, user=user)


def _cancelled_note(session: Session) -> str:
    why = session.waiting_reason or domain.unopened_reason(session.start_mode, session.t2)
    return f"Session {session.id} was cancelled ({why}): nobody can join it"


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


MAX_REASON = 500


def _reason(reason: object) -> str:
    text = str(reason or "").strip()
    if "\x00" in text:
        raise DomainError("The reason must not contain NUL characters", "invalid_reason")
    if len(text) > MAX_REASON:
        raise DomainError(f"The reason is {len(text)} characters: at most {MAX_REASON}", "invalid_reason")
    return text


@_retrying
def pause_trading(actor, session_id: str, reason: str = "") -> Session:
    """The organiser stops new RFQs, quotes and accepts in an open session (an incident, a question from
    the floor) without closing it: cancels, withdrawals and the settlement stay allowed. Recorded as
    TradingPaused on the session's stream, by the organiser's user id (null: the system)."""
    text = _reason(reason)
    with _command(session_id) as cmd:
        _require_organiser(cmd.session, actor)
        _require_trading(cmd.session, cmd.now)
        if cmd.session.paused_at is not None:
            raise Conflict(f"Trading in {cmd.session.id} is already paused", "already_paused")
        cmd.emit("TradingPaused", {"reason": text, "by_id": actor.pk if actor is not None else None})
    return _get_session(session_id)


@_retrying
def resume_trading(actor, session_id: str) -> Session:
    """The organiser lets trading go on after a pause (TradingResumed, by the organiser's user id)."""
    with _command(session_id) as cmd:
        _require_organiser(cmd.session, actor)
        _require_trading(cmd.session, cmd.now)
        if cmd.session.paused_at is None:
            raise Conflict(f"Trading in {cmd.session.id} is not paused", "not_paused")
        cmd.emit("TradingResumed", {"by_id": actor.pk if actor is not None else None})
    return _get_session(session_id)
