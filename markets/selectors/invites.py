"""Reads of invites: who may manage a session's invites, the invite a link names, where a link
stands, the organiser's lists, the names already taken in a session, and the guest a browser may
continue as. No writes here (markets.services.invites writes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db.models import Count

from ledger import clock
from markets import access, domain, invite_rules
from markets.errors import Conflict, Forbidden, NotFound, Unauthenticated
from markets.models import Invite, InviteUse, Participant, Session

STATE_LABELS = {"open": "active", "revoked": "revoked", "used_up": "used up", "closed": "joining closed"}


def may_manage(session: Session, user) -> bool:
    """The session's organiser, its creator and staff may invite people into it."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff or user.is_superuser or session.created_by_id == user.pk:
        return True
    return Participant.objects.filter(session_id=session.id, user=user, role=Participant.Role.ORGANISER).exists()


def require_manager(session: Session, user) -> None:
    """Refuse anyone who may not manage the invites: a session they may not see is refused as
    `markets.access` refuses it (403 not_visible), one they may see says who may (403 not_organiser)."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise Unauthenticated("Sign in first", "unauthenticated")
    if may_manage(session, user):
        return
    access.require_view(session, user)
    raise Forbidden("Only the session's organiser can invite people into it", "not_organiser")


def manageable_session(session_id: object, user) -> Session:
    """The session named, if it exists and `user` may manage its invites."""
    sid = str(session_id)
    session = Session.objects.filter(id=sid).first() if domain.SESSION_ID.fullmatch(sid) else None
    if session is None:
        raise NotFound(f"Unknown session {sid[:64]!r}", "session_not_found")
    require_manager(session, user)
    return session


def manageable_invite(invite_id: int, user) -> Invite:
    invite = Invite.objects.select_related("session").filter(id=invite_id).first()
    if invite is None:
        raise NotFound(f"Unknown invite {invite_id}", "invite_not_found")
    require_manager(invite.session, user)
    return invite


def invite_for_token(token: object) -> Invite | None:
    """The invite a link names; None when the token was altered or names nothing."""
    token_id = invite_rules.unsign(token)
    if token_id is None:
        return None
    return Invite.objects.select_related("session").filter(token_id=token_id).first()


def joinable_refusal(session: Session, now: dt.datetime | None = None) -> Conflict | None:
    """Why nobody can join `session` now (the command's clock, or the clock), if so: people join only
    before it opens (at the opening the pool is shared out among those in, so a newcomer would hold
    nothing), and a timed session whose t2 passed before it opened is cancelled by then."""
    phase = session.phase(now or clock.now())
    if phase == Session.Status.CREATED:
        return None
    if phase == Session.Status.CANCELLED:
        if session.status == Session.Status.CREATED:
            why = domain.unopened_reason(session.start_mode, session.t2)
            return Conflict(f"Session {session.id} was cancelled ({why}): nobody can join it", "session_not_joinable")
        return Conflict(f"Session {session.id} was cancelled: nobody can join it", "session_not_joinable")
    return Conflict(
        f"Session {session.id} has opened: joining closed when it opened (newcomers would hold nothing)",
        "session_not_joinable",
    )


def latecomer_message(session: Session) -> str:
    """What an invite link opened after the opening says, plainly: when it started, why nobody joins
    now, what to do instead."""
    if session.status == Session.Status.CANCELLED:
        return f"Session {session.id} was cancelled before it opened: nobody can join it."
    started = f" at {session.opened_at:%H:%M} UTC" if session.opened_at is not None else ""
    when = f" on {session.opened_at:%Y-%m-%d}" if session.opened_at is not None else ""
    return (
        f"This session started{started}{when}; joining closed when it opened (the pool was shared out among "
        "those who had joined). If you joined it on another phone or browser, ask the organiser for your "
        "rejoin link."
    )


def joined_counts(session: Session) -> dict[str, int]:
    """Who the opening would allocate the pool among: {"holders", "trader", "maker"} (one query)."""
    counts = dict.fromkeys(("trader", "maker"), 0)
    rows = Participant.objects.filter(session=session, role__in=counts).values_list("role").annotate(n=Count("id"))
    for role, n in rows.order_by():
        counts[role] = n
    return {"holders": counts["trader"] + counts["maker"]} | counts


def link_refusal(invite: Invite, now: dt.datetime | None = None) -> Conflict | None:
    """Why this link lets nobody in now, if so (the join command raises it; the join page shows it)."""
    if invite.revoked_at is not None:
        return Conflict("This invite link was withdrawn by the organiser: ask them for a new one", "invite_revoked")
    closed = joinable_refusal(invite.session, now)
    if closed is not None:
        return closed
    if invite.uses < invite.max_uses:
        return None
    if invite.personal:
        return Conflict(
            f"This personal link was already used to join as {invite.name}: if that was you, open it in the "
            "browser you joined with; otherwise ask the organiser for a new link",
            "invite_used_up",
        )
    return Conflict(
        f"All {invite.max_uses} places of this invite link are taken: ask the organiser for a new link",
        "invite_used_up",
    )


_STATE_OF = {"invite_revoked": "revoked", "session_not_joinable": "closed", "invite_used_up": "used_up"}


def invite_state(invite: Invite) -> str:
    """open, revoked, closed (the session opened or was cancelled) or used_up."""
    refusal = link_refusal(invite)
    return "open" if refusal is None else _STATE_OF[refusal.code]


@dataclass(frozen=True)
class InviteRow:
    invite: Invite
    url: str
    state: str

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


Link = Callable[[str], str]  # the absolute address of the join page for a signed token (the edge knows the host)


def invite_rows(invites: Iterable[Invite], link: Link) -> list[InviteRow]:
    return [InviteRow(i, link(invite_rules.sign(i.token_id)), invite_state(i)) for i in invites]


def session_invites(session: Session, link: Link) -> dict[str, list[InviteRow]]:
    """The organiser's lists: open links newest first, and personal links in the order pasted."""
    invites = list(Invite.objects.filter(session=session).select_related("session").order_by("-created_at", "-id"))
    return {
        "links": invite_rows([i for i in invites if not i.personal], link),
        "personal": invite_rows(sorted((i for i in invites if i.personal), key=lambda i: i.id), link),
    }


def personal_rows(session: Session, link: Link, batch: str | None = None) -> list[InviteRow]:
    """Personal links still usable, in the order they were pasted (one batch, or all)."""
    invites = Invite.objects.filter(session=session).exclude(name="").select_related("session").order_by("id")
    if batch:
        invites = invites.filter(batch=batch)
    return [row for row in invite_rows(invites, link) if row.state == "open"]


def taken_names(session: Session, *, except_invite: Invite | None = None) -> dict[str, str]:
    """Names no newcomer may take in `session`, keyed by `invite_rules.same_name`: its participants'
    usernames and display names, and the names of personal links not used yet. The values say why."""
    taken: dict[str, str] = {}
    for username, display in Participant.objects.filter(session=session).values_list("username", "user__first_name"):
        for name in (username, display):
            if name:
                taken.setdefault(invite_rules.same_name(name), f"{name} has already joined this session")
    pending = Invite.objects.filter(session=session, revoked_at__isnull=True).exclude(name="")
    if except_invite is not None:
        pending = pending.exclude(pk=except_invite.pk)
    for invite in pending:
        if invite.uses < invite.max_uses:
            taken.setdefault(
                invite_rules.same_name(invite.name), f"{invite.name} has a personal invite to this session"
            )
    return taken


def is_participant(session: Session, user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return Participant.objects.filter(session_id=session.id, user=user).exists()


def returning_guest(invite: Invite, value: object):
    """The guest a browser joined as through `invite` (its signed cookie holds the link's token id and
    the user id), if they may continue in one click: the link is not revoked, the cookie names this
    link, this user joined by this very link (an InviteUse row), and is still an active participant and
    a guest (no password, no staff rights). So a cookie can never stand in for a password, nor reach an
    account that never used this link (a bot, someone the organiser added), nor outlive a revoked link."""
    read = invite_rules.read_returning(value)
    if read is None or invite.revoked_at is not None or read[0] != invite.token_id:
        return None
    use = (
        InviteUse.objects.select_related("participant__user")
        .filter(invite=invite, participant__session_id=invite.session_id, participant__user_id=read[1])
        .first()
    )
    user = use.participant.user if use is not None else None
    if user is None or not user.is_active or user.is_staff or user.is_superuser or user.has_usable_password():
        return None
    return user


def display_name(user) -> str:
    return user.first_name or user.get_username()
