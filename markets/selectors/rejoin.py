"""Reads of the way back in: who may be signed in by a rejoin link, whose link a viewer may see, the
link a token names and why it lets nobody in now. No writes here (markets.services.rejoin writes).

Who a link may sign in is the point of it all. A rejoin link is seen by the organiser, so it must never
stand in for a password: only guests made by an invite (no usable password, no staff rights, active,
and an InviteUse row saying they joined by a link) get one. An account with a password signs in with
it; bots and accounts the organiser added by name get no link at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.hashers import is_password_usable

from markets import access, domain, invite_rules
from markets.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated
from markets.models import InviteUse, Participant, RejoinLink, Session
from markets.selectors.invites import display_name, may_manage

LINK = "link"  # a guest who joined by an invite: a rejoin link
PASSWORD = "password"  # an account with a password: signs in with it
NONE = "none"  # bots, accounts added by name without a password, deactivated accounts: no way by link

Link = Callable[[str], str]  # the absolute address of the rejoin page for a signed token (the edge knows the host)


def _kind(*, password: str, active: bool, staff: bool, joined_by_link: bool) -> str:
    if not active:
        return NONE
    if is_password_usable(password):
        return PASSWORD
    if staff or not joined_by_link:
        return NONE
    return LINK


def way_back(participant: Participant) -> str:
    """How `participant` gets back in from another browser: LINK, PASSWORD or NONE."""
    user = participant.user
    return _kind(
        password=user.password,
        active=user.is_active,
        staff=user.is_staff or user.is_superuser,
        joined_by_link=InviteUse.objects.filter(participant=participant).exists(),
    )


def way_back_kinds(session: Session) -> dict[int, str]:
    """{user id: way back} for every participant of `session` (two queries, for the monitor's rows)."""
    by_link = set(InviteUse.objects.filter(participant__session=session).values_list("participant_id", flat=True))
    rows = Participant.objects.filter(session=session).values_list(
        "id", "user_id", "user__password", "user__is_active", "user__is_staff", "user__is_superuser"
    )
    return {
        user_id: _kind(password=password, active=active, staff=staff or superuser, joined_by_link=pid in by_link)
        for pid, user_id, password, active, staff, superuser in rows
    }


def require_link_viewer(session: Session, participant: Participant, user) -> None:
    """A participant's rejoin link is seen by the session's organiser, creator and staff, and by the
    participant themselves; nobody else learns even that it exists."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise Unauthenticated("Sign in first", "unauthenticated")
    if participant.user_id == user.pk or may_manage(session, user):
        return
    raise Forbidden("Only the organiser and the participant themselves see a rejoin link", "not_organiser")


def participant_of(session_id: object, user_id: object) -> Participant:
    """The participant `user_id` of session `session_id` (with its user and session), or NotFound."""
    sid = str(session_id)
    number = domain.parse_id(user_id)
    found = None
    if domain.SESSION_ID.fullmatch(sid) and number is not None:
        found = Participant.objects.select_related("user", "session").filter(session_id=sid, user_id=number).first()
    if found is None:
        raise NotFound(f"No such participant in session {sid[:64]!r}", "participant_not_found")
    return found


def viewable_participant(session_id: object, user_id: object, viewer) -> Participant:
    """The participant whose link `viewer` asks to see, if they may. In a session the viewer may not
    even see, an existing participant answers the same 404 as a missing one, so that who takes part in
    a participants-only session cannot be probed by user id."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        raise Unauthenticated("Sign in first", "unauthenticated")
    participant = participant_of(session_id, user_id)
    try:
        require_link_viewer(participant.session, participant, viewer)
    except Forbidden:
        if not access.can_view(participant.session, viewer):
            participant_of(session_id, 0)  # raises the NotFound a missing participant gets
        raise
    return participant


def live_link(participant: Participant) -> RejoinLink | None:
    return RejoinLink.objects.filter(participant=participant, revoked_at__isnull=True).first()


def no_link_refusal(participant: Participant) -> DomainError | None:
    """Why `participant` gets no rejoin link, if so (asked when one is made and when one is used)."""
    kind = way_back(participant)
    name = display_name(participant.user)
    if kind == PASSWORD:
        return Forbidden(
            f"{name} has a password: sign in with that password on the other device (a link never stands in for it)",
            "rejoin_has_password",
        )
    if kind == NONE:
        if not participant.user.is_active:
            return Forbidden(f"{name}'s account is deactivated: nobody can sign in as it", "rejoin_not_guest")
        return Forbidden(
            f"{name} did not join by an invite link, so no link signs in as them (bots and accounts added "
            "by name have none)",
            "rejoin_not_guest",
        )
    return None


def link_for_token(token: object) -> RejoinLink | None:
    """The rejoin link a token names (with its participant, user and session); None when the token was
    altered or names nothing."""
    token_id = invite_rules.unsign_rejoin(token)
    if token_id is None:
        return None
    return RejoinLink.objects.select_related("participant__user", "session").filter(token_id=token_id).first()


def use_refusal(link: RejoinLink) -> DomainError | None:
    """Why this link signs nobody in now, if so: it was replaced, or its account may not be signed in
    by a link (it got a password since, or was deactivated)."""
    if link.revoked_at is not None:
        return Conflict(
            f"This rejoin link was replaced on {link.revoked_at:%Y-%m-%d at %H:%M} UTC: ask the organiser for the "
            'new one, or open "Open this on another device" where you are still signed in',
            "rejoin_revoked",
        )
    return no_link_refusal(link.participant)


@dataclass(frozen=True)
class RejoinView:
    """What the organiser's dialog and the participant's own panel show."""

    participant: Participant
    name: str
    link: RejoinLink | None
    url: str
    refusal: str


def rejoin_view(
    participant: Participant, link: RejoinLink | None, to_url: Link, refusal: DomainError | None
) -> RejoinView:
    """The panel's facts; `refusal` is `no_link_refusal(participant)`, read once by the caller."""
    shown = link if refusal is None else None
    return RejoinView(
        participant=participant,
        name=display_name(participant.user),
        link=shown,
        url=to_url(invite_rules.sign_rejoin(shown.token_id)) if shown is not None else "",
        refusal=refusal.message if refusal is not None else "",
    )
