"""The fixing as people see it before the settlement: what settling now would use (the organiser's
preview), and the rule in words."""

from __future__ import annotations

from typing import Any

from ledger import clock
from markets import domain
from markets.models import Session


def fixing_preview(session: Session) -> dict[str, Any]:
    """What settling now would use: the fixing rule's prices, or why it cannot."""
    from oracle import fixing

    now = clock.now()
    timed = session.end_mode == Session.EndMode.TIMED and session.t2
    at = session.t2 if timed else now
    end = min(now, fixing.window_end(session.fixing_rule, at)) if timed else at  # settling now ends the window
    try:
        taken = fixing.take_fixing(session.id, session.legs, at, session.fixing_rule, end)
    except fixing.MissingPrice as exc:
        return {"ok": False, "reason": str(exc), "at": at}
    return {
        "ok": True,
        "at": at,
        "rule": taken.rule,
        "described": fixing.describe(taken.rule),
        "prices": [(leg, domain.to_decimal(taken.prices[leg], domain.PRICE_DP)) for leg in session.legs],
    }
