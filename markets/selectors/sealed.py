"""Sealed orders: nobody but an order's owner sees it or its size until its batch clears; the organiser and
auditors always do. The one rule every reader of the log applies (the floor's log, the API's events, the
JSON stream, the export's events.csv): an order is revealed once it leaves the book through a batch
(filled or expired at a cut) or with trading (lapsed); one that rests is sealed, and so is one its owner
cancelled (it never met the market). A sealed OrderPlaced or OrderCancelled reads `{"order_id": N,
"sealed": true}`: side, size, limit and owner taken out.

The log itself is whole (its hashes are over the whole payloads): a sealed row says so, so an auditor
knows to read it with their own rights.
"""

from __future__ import annotations

from typing import Any

from markets import access
from markets.models import Order, Participant, Session

SEALED_TYPES = frozenset({"OrderPlaced", "OrderCancelled"})
HIDDEN = (Order.Status.RESTING, Order.Status.CANCELLED)


def sees_all_orders(session: Session, user) -> bool:
    """The session's organiser (and its creator), staff and auditors (`markets.view_any_session`)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or access.sees_everything(user) or session.created_by_id == user.pk:
        return True
    return Participant.objects.filter(session_id=session.id, user=user, role=Participant.Role.ORGANISER).exists()


def sealed(data: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": data.get("order_id"), "sealed": True}


class Seal:
    """How one viewer reads a session's orders in the log (`viewer` None: the public, as the floor's shared
    log shows everyone): `payload(type, data)` is what they may read."""

    def __init__(self, session: Session | str, viewer=None, *, hidden: set[int] | None = None) -> None:
        """`hidden`: the orders sealed as the caller already knows them (an export's cut, a stream's batch);
        left out, they are read from the read models when first needed."""
        self.session_id = session if isinstance(session, str) else session.id
        self.all = viewer is not None and not isinstance(session, str) and sees_all_orders(session, viewer)
        self.user_id = getattr(viewer, "pk", None) if viewer is not None else None
        self._hidden: set[int] | None = hidden

    @property
    def hidden(self) -> set[int]:
        """Orders sealed now (read once, when first needed)."""
        if self._hidden is None:
            self._hidden = set(
                Order.objects.filter(session_id=self.session_id, status__in=HIDDEN).values_list("id", flat=True)
            )
        return self._hidden

    def hides(self, event_type: str, data: dict[str, Any]) -> bool:
        if self.all or event_type not in SEALED_TYPES:
            return False
        if self.user_id is not None and data.get("user_id") == self.user_id:
            return False  # the owner's own
        return data.get("order_id") in self.hidden

    def payload(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return sealed(data) if self.hides(event_type, data) else data
