"""Where sessions stand, for the sessions list, the floor's header, the API and the oracle."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max

from ledger import clock
from markets import access, domain, sql
from markets.models import Participant, Session
from markets.selectors.common import latest_prices, money_dec, price_vector
from oracle.models import Tick


@dataclass
class SessionRow:
    session: Session
    participants: int
    pool_value: Decimal | None
    last_tick: dt.datetime | None
    phase: str = ""
    phase_label: str = ""
    note: str = ""
    paused: bool = False  # open, with trading paused by the organiser


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
        paused = is_paused(s, phase)
        rows.append(
            SessionRow(
                s,
                s.n,
                money_dec(domain.payout(s.q, vec)) if vec else None,
                last,
                phase,
                "Paused" if paused else PHASE_LABELS[phase],
                status_note(s, now),
                paused,
            )
        )
    return rows


def phase_context(session: Session) -> dict[str, Any]:
    """Where the session stands now, for templates: its phase (trading stops at t2 by itself, before the
    scheduler records it), a label, and t2 in epoch milliseconds for the page's countdown."""
    now = clock.now()
    phase = session.phase(now)
    return {
        "now": now,
        "phase": phase,
        "phase_label": PHASE_LABELS[phase],
        "paused": is_paused(session, phase),
        "cancelled_reason": cancelled_reason(session, phase),
        "t2_ms": int(session.t2.timestamp() * 1000) if session.t2 else None,
    }


PHASE_LABELS = {
    Session.Status.CREATED: "Created",
    Session.Status.OPEN: "Open",
    Session.Status.CLOSED: "Trading closed",
    Session.Status.SETTLED: "Settled",
    Session.Status.CANCELLED: "Cancelled",
}


def is_paused(session: Session, phase: str) -> bool:
    """Trading paused by the organiser: only an open session counts (closed is what it is, whatever the pause)."""
    return phase == Session.Status.OPEN and session.paused_at is not None


def status_note(session: Session, now: dt.datetime | None = None) -> str:
    """One line on where a session stands, as the sessions list, the floor and the API say it."""
    now = now or clock.now()
    phase = session.phase(now)
    rule = session.fixing_rule.get("rule", "last")
    if phase == Session.Status.CREATED:
        if session.start_mode == Session.StartMode.SCHEDULED and session.t1:
            return f"opens at t1 ({domain.when(session.t1)})"
        return "not open yet: the organiser opens it"
    if is_paused(session, phase):
        why = f": {session.pause_reason}" if session.pause_reason else ""
        return (
            f"trading paused by the organiser since {domain.when(session.paused_at.replace(microsecond=0))}{why}; "
            "RFQs, quotes and accepts wait until it resumes"
        )
    if phase == Session.Status.OPEN:
        if session.end_mode == Session.EndMode.TIMED and session.t2:
            return f"trading open until t2 ({domain.when(session.t2)}), then it settles at the fixing ({rule})"
        return "trading open; the organiser settles it"
    if phase == Session.Status.CLOSED:
        waiting = f"; waiting: {session.waiting_reason}" if session.waiting_reason else ""
        return f"trading closed, settles at the fixing ({rule}, t2 {domain.when(session.t2)}){waiting}"
    if phase == Session.Status.CANCELLED:
        why = cancelled_reason(session, phase)
        return f"cancelled: {why}" if why else "cancelled"
    return "settled: payouts are final"


def cancelled_reason(session: Session, phase: str) -> str:
    """Why a cancelled session was: recorded, or, while t2 has overtaken it unopened and the scheduler has not
    recorded it yet, the reason it will record (read by the clock, as the phase is)."""
    if phase != Session.Status.CANCELLED:
        return ""
    if session.status == Session.Status.CREATED:
        return domain.unopened_reason(session.start_mode, session.t2)
    return session.waiting_reason


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
        me = sql.participant_of(session.id, user.pk)
    return {"me": me, "is_organiser": bool(me and me.role == Participant.Role.ORGANISER)}
