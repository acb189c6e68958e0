"""Who may see a session: the one rule the pages, the API, the sockets and the exports all ask.

A public session may be watched by any signed-in user (its holdings, events, trades and payouts: the
floor calls them watchers). A participants-only session is seen by its participants, by superusers and by
holders of the `markets.view_any_session` permission (auditors), and by nobody else; the others get a
403 `not_visible` (the API), a page saying so (the floor) or close code 4403 (the sockets).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from markets.errors import Forbidden, Unauthenticated
from markets.models import Participant, Session

VIEW_ANY = "markets.view_any_session"


def sees_everything(user) -> bool:
    return bool(user is not None and user.is_authenticated and (user.is_superuser or user.has_perm(VIEW_ANY)))


def can_view(session: Session, user, *, participant: Participant | bool | None = False) -> bool:
    """Whether `user` may see `session`; `participant` is their Participant row (or None) when the caller
    has read it already, sparing the query."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if session.visibility == Session.Visibility.PUBLIC or sees_everything(user):
        return True
    if participant is not False:
        return participant is not None
    return Participant.objects.filter(session_id=session.id, user=user).exists()


def require_view(session: Session, user) -> None:
    """Raise the refusal the edges show when `user` may not see `session`."""
    if user is None or not user.is_authenticated:
        raise Unauthenticated("Sign in first", "unauthenticated")
    if not can_view(session, user):
        raise Forbidden(f"Session {session.id} is visible to its participants only", "not_visible")


def visible_sessions(user) -> QuerySet[Session]:
    """The sessions `user` may see (the sessions list and GET /sessions show only these)."""
    sessions = Session.objects.all()
    if sees_everything(user):
        return sessions
    if user is None or not user.is_authenticated:
        return sessions.none()
    mine = Participant.objects.filter(user=user).values("session_id")
    return sessions.filter(Q(visibility=Session.Visibility.PUBLIC) | Q(id__in=mine))
