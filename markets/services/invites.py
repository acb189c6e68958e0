"""Getting people in: invite links (create, revoke), joining through one (a new guest account, signed
in and joined, in one step), and personal single-use links for a pasted list of names.

Each is one command in the house's envelope: one transaction holding its session's lock, so every
check below (the limit, the names taken, the phase) is read and acted on with no other writer of that
session in between. A refusal rolls back everything: no invite, no user, no event is left behind. The
joins themselves are `join_session`'s ParticipantJoined events, naming the new user by id.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F

from ledger import clock
from ledger.store import ConcurrencyError
from markets import invite_rules
from markets.errors import Conflict, DomainError, Forbidden, NotFound
from markets.invite_rules import PeopleRefused
from markets.models import Invite, Participant, Session
from markets.selectors.invites import joinable_refusal, link_refusal, require_manager, taken_names
from markets.services.command import _command, _require_user, _retrying, _row_id
from markets.services.rejoin import record_invite_join
from markets.services.sessions import join_session
from oracle import units

INVALID_LINK = "This invite link is not valid: check that it was copied whole, or ask the organiser for a new one"


def _role(role: object) -> str:
    if role not in Invite.Role.values:
        raise DomainError("Invite people as traders or as makers", "invalid_role")
    return str(role)


def _max_uses(value: object) -> int:
    """Read by the one reader of numbers (`oracle.units.read_whole`): a line break or a digit of another
    script is refused, as everywhere else."""
    try:
        return units.read_whole(value, "The limit", low=1, high=invite_rules.MAX_USES)
    except units.InvalidNumber:
        raise DomainError(
            f"The limit is how many people may join by this link: a whole number from 1 to {invite_rules.MAX_USES}",
            "invalid_limit",
        ) from None


def _require_joinable(session: Session, now) -> None:
    refusal = joinable_refusal(session, now)
    if refusal is not None:
        raise refusal


def _require_actor(actor) -> None:
    _require_user(actor)
    if actor is None:
        raise Forbidden("An invite names who made it: make it as a user", "forbidden")


@_retrying
def create_invite(actor, session_id: str, role: str, max_uses: object) -> Invite:
    """An open link for up to `max_uses` people, who join as `role` (organiser, creator or staff)."""
    _require_actor(actor)
    with _command(session_id) as cmd:
        require_manager(cmd.session, actor)
        _require_joinable(cmd.session, cmd.now)
        invite = Invite.objects.create(
            session=cmd.session,
            role=_role(role),
            token_id=invite_rules.new_token_id(),
            max_uses=_max_uses(max_uses),
            created_by=actor,
            created_at=cmd.now,
        )
    return invite


@_retrying
def revoke_invite(actor, invite_id: object) -> Invite:
    """Withdraw a link: nobody else joins by it (those who did stay in). Revoking twice changes nothing."""
    _require_user(actor)
    number = _row_id(invite_id, "invite", "invite_not_found")
    session_id = Invite.objects.filter(pk=number).values_list("session_id", flat=True).first()
    if session_id is None:
        raise NotFound(f"Unknown invite {number}", "invite_not_found")
    with _command(session_id) as cmd:
        if actor is not None:
            require_manager(cmd.session, actor)
        invite = Invite.objects.select_related("session").get(pk=number)
        if invite.revoked_at is None:
            invite.revoked_at = cmd.now
            invite.save(update_fields=["revoked_at"])
    return invite


def _new_guest(name: str):
    """A user for someone who joined by a link: no password (they come back through their browser),
    a readable username unique in the whole site, the display name as typed."""
    users = get_user_model()
    base = invite_rules.username_base(name)
    near = users.objects.filter(username__istartswith=base).values_list("username", flat=True)
    username = invite_rules.free_username(base, {invite_rules.same_name(u) for u in near})
    user = users(username=username, first_name=name)
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # another join took this username at the same instant: run again
        raise ConcurrencyError(f"username {username} taken meanwhile") from exc
    return user


@_retrying
def join_by_invite(token: str, display_name: object, *, sign_in: Callable[[Any], None] | None = None) -> Participant:
    """Someone opening a link joins in one step: a guest user named after them, joined by
    `join_session` as the link's role, the link's use counted and recorded (with the guest's first
    rejoin link), and `sign_in(user)` (the page signs
    the browser in) -- all in one transaction, so a refusal leaves no user behind. The invite is the
    authority here (the organiser made it), so the join runs with the system's rights: it also lets
    people into participants-only sessions. A personal link joins as its own name, whatever is typed."""
    token_id = invite_rules.unsign(token)
    session_id = None
    if token_id is not None:
        session_id = Invite.objects.filter(token_id=token_id).values_list("session_id", flat=True).first()
    if session_id is None:
        raise NotFound(INVALID_LINK, "invite_invalid")
    with _command(session_id) as cmd:
        invite = Invite.objects.get(token_id=token_id)  # read again under the session's lock
        invite.session = cmd.session
        refusal = link_refusal(invite, cmd.now)
        if refusal is not None:
            raise refusal
        name = invite.name or invite_rules.clean_display_name(display_name)
        taken = taken_names(cmd.session, except_invite=invite)
        key = invite_rules.same_name(name)
        if key in taken:
            then = "ask the organiser for a new link" if invite.personal else "choose another name"
            raise Conflict(f"{taken[key]}: {then}", "name_taken")
        user = _new_guest(name)
        participant = join_session(None, cmd.session.id, invite.role, username=user.username)
        record_invite_join(cmd.session, invite, participant, cmd.now)
        counted = Invite.objects.filter(pk=invite.pk, uses__lt=F("max_uses")).update(uses=F("uses") + 1)
        if counted != 1:  # cannot happen under the lock; the database's check constraint agrees
            raise Conflict("All places of this invite link are taken", "invite_used_up")
        if sign_in is not None:
            sign_in(user)
    return participant


@_retrying
def watch_by_invite(token: str, display_name: object, *, sign_in: Callable[[Any], None] | None = None):
    """A latecomer with a link to a public session that has opened watches it: a guest user named as typed,
    who holds nothing and trades nothing (no event: watching is not taking part), signed in by
    `sign_in(user)` in the same transaction. Refused for a revoked link, a session not open to watchers
    (participants only) and a session that still takes people in (then they join)."""
    token_id = invite_rules.unsign(token)
    invite = Invite.objects.filter(token_id=token_id).select_related("session").first() if token_id else None
    if invite is None:
        raise NotFound(INVALID_LINK, "invite_invalid")
    if invite.revoked_at is not None:
        raise Conflict("This invite link was withdrawn by the organiser: ask them for a new one", "invite_revoked")
    session = invite.session
    if session.visibility != Session.Visibility.PUBLIC:
        raise Forbidden(f"Session {session.id} is for its participants only: there is nothing to watch", "not_visible")
    if joinable_refusal(session, clock.now()) is None:
        raise Conflict("This session still takes people in: join it with your name", "session_joinable")
    name = invite_rules.clean_display_name(display_name)
    with transaction.atomic():
        user = _new_guest(name)
        if sign_in is not None:
            sign_in(user)
    return user


@_retrying
def add_people_in_bulk(actor, session_id: str, people: str | list[str], *, role: str = "trader") -> list[Invite]:
    """One personal single-use link per person of a pasted list (one a line, or CSV name,role), the
    display name fixed. Every bad line is reported at once (PeopleRefused) and then nothing is made."""
    _require_actor(actor)
    default_role = _role(role)
    with _command(session_id) as cmd:
        require_manager(cmd.session, actor)
        _require_joinable(cmd.session, cmd.now)
        found = invite_rules.read_people(people, default_role)
        taken = taken_names(cmd.session)
        problems = [
            f"line {p.line}: {taken[invite_rules.same_name(p.name)]}"
            for p in found
            if invite_rules.same_name(p.name) in taken
        ]
        if problems:
            raise PeopleRefused(problems)
        batch = secrets.token_hex(6)
        Invite.objects.bulk_create(
            Invite(
                session=cmd.session,
                role=p.role,
                token_id=invite_rules.new_token_id(),
                name=p.name,
                batch=batch,
                max_uses=1,
                created_by=actor,
                created_at=cmd.now,
            )
            for p in found
        )
    return list(Invite.objects.filter(session_id=cmd.session.id, batch=batch).select_related("session").order_by("id"))
