"""Rejoin links: a participant's personal way back in from another phone or browser. Made when a guest
joins by an invite (with the InviteUse that records which link they came through), shown to the
organiser on the monitor and to the participant on their floor, and revoked (which makes the next one)
by the organiser or by the participant themselves.

Each is one command in the house's envelope (one transaction holding its session's lock), so two
revocations racing still leave exactly one live link (the database's partial unique index agrees).
Access state, not market state: no event is written (see markets.access_models).
"""

from __future__ import annotations

import datetime as dt

from markets import invite_rules
from markets.models import Invite, InviteUse, Participant, RejoinLink, Session
from markets.selectors.rejoin import live_link, no_link_refusal, participant_of, require_link_viewer
from markets.services.command import _command, _require_user, _retrying


def _new_link(session: Session, participant: Participant, actor, now: dt.datetime) -> RejoinLink:
    return RejoinLink.objects.create(
        session=session,
        participant=participant,
        token_id=invite_rules.new_token_id(),
        created_by=actor,
        created_at=now,
    )


def record_invite_join(session: Session, invite: Invite, participant: Participant, now: dt.datetime) -> None:
    """Inside `join_by_invite`'s transaction: which link the new guest came through, and their first
    rejoin link."""
    InviteUse.objects.create(invite=invite, participant=participant, used_at=now)
    _new_link(session, participant, None, now)


@_retrying
def issue_rejoin_link(actor, session_id: str, user_id: object) -> RejoinLink:
    """The participant's live rejoin link, made if they have none (for the organiser, creator or staff,
    or the participant themselves). Refused for accounts a link may not sign in (a password, a bot)."""
    _require_user(actor)
    participant = participant_of(session_id, user_id)
    with _command(participant.session_id) as cmd:
        if actor is not None:
            require_link_viewer(cmd.session, participant, actor)
        refusal = no_link_refusal(participant)
        if refusal is not None:
            raise refusal
        return live_link(participant) or _new_link(cmd.session, participant, actor, cmd.now)


@_retrying
def revoke_rejoin_link(actor, session_id: str, user_id: object) -> RejoinLink | None:
    """Kill the participant's live link at once, for everyone, sign out every browser signed in as them,
    and make the next one (returned; None when the account may no longer have one, e.g. it got a password). The organiser, creator or staff
    may revoke anyone's; a participant only their own."""
    _require_user(actor)
    participant = participant_of(session_id, user_id)
    with _command(participant.session_id) as cmd:
        if actor is not None:
            require_link_viewer(cmd.session, participant, actor)  # the organiser's side, or their own
        RejoinLink.objects.filter(participant=participant, revoked_at__isnull=True).update(
            revoked_at=cmd.now, revoked_by=actor
        )
        if no_link_refusal(participant) is not None:
            return None
        _sign_out_everywhere(participant.user)
        return _new_link(cmd.session, participant, actor, cmd.now)


def _sign_out_everywhere(guest) -> None:
    """A leaked link may have signed in a stranger: every browser signed in as this guest is signed out.
    Django checks each request's session against a hash of the account's password field, and a guest's
    is an unusable one: a new one ends every session made before (the new link signs them in again)."""
    guest.set_unusable_password()
    guest.save(update_fields=["password"])
