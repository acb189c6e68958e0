"""What bounded shorting shows: each participant's margin at the oracle's latest prices (W, the
requirement, the status, the short used per leg), read the way the commands judge it
(`markets.domain.margin`), for the API, the floor, the monitor and the export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from ledger import clock
from markets import domain, projections
from markets.domain import margin as rules
from markets.errors import Conflict
from markets.models import Participant, Session
from markets.selectors.batches import require_every_order
from markets.selectors.prices import prices_at


@dataclass(frozen=True)
class MarginRow:
    user_id: int
    name: str
    status: str  # ok, reduce_only, liquidated (W < 0 now, or liquidated earlier in the session)
    w: str | None  # money text; None when a leg held has no price yet
    requirement: str | None
    excess: str | None  # W - requirement
    binding_leg: str | None
    short: dict[str, str]  # leg -> units short (only the legs short)
    short_used: dict[str, str]  # leg -> fraction of the per-participant limit used, e.g. "0.75"
    liquidated_at: dt.datetime | None

    def as_dict(self) -> dict:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "status": self.status,
            "W": self.w,
            "requirement": self.requirement,
            "excess": self.excess,
            "binding_leg": self.binding_leg,
            "short": self.short,
            "short_used": self.short_used,
            "liquidated_at": self.liquidated_at.isoformat() if self.liquidated_at else None,
        }


def judge(
    x: list[int], prices: list[int | None], settings: rules.MarginSettings, legs: list[str], *, liquidated: bool
) -> tuple[rules.Assessment | None, str]:
    """One holder's assessment (None: a leg held short has no price yet) and the status shown: one
    liquidated earlier in the session reads `liquidated` while it is otherwise ok."""
    try:
        judged = rules.assess(x, prices, settings, legs)
    except domain.DomainError:
        judged = None
    status = judged.status if judged is not None else "ok"
    return judged, "liquidated" if liquidated and status == "ok" else status


def settings_out(session: Session) -> dict[str, str | None]:
    """The session's shorting settings as the API shows them beside the batch settings (null: off)."""
    settings = session.margin
    return {
        "short_limit": settings.short_limit or None,
        "margin_band": settings.margin_band or None,
        "initial_margin": settings.initial_margin or None,
    }


def margin_rows(
    session: Session, at: dt.datetime | None = None, *, users: set[int] | None = None
) -> tuple[list[MarginRow], dict]:
    """Every holder's margin (only `users`' when given) at the latest prices at `at` (now by default), and
    those prices with their ticks ({"prices": {leg: text}, "ticks": {leg: id}}). Empty rows for a session
    without shorting."""
    if not session.shorting:
        return [], {"prices": {}, "ticks": {}}
    at = at or clock.now()
    prices, ticks = prices_at(session, at)
    settings = session.margin
    caps = settings.caps(session.q)
    matrix = projections.holdings_by_user(session.id)
    if users is not None:
        matrix = {u: x for u, x in matrix.items() if u in users}
    people = {
        p.user_id: p
        for p in Participant.objects.filter(session_id=session.id, user_id__in=list(matrix)).only(
            "user_id", "display_name", "liquidated_at"
        )
    }
    rows = []
    for user, x in sorted(matrix.items(), key=lambda item: people[item[0]].display_name.lower()):
        person = people[user]
        judged, status = judge(x, prices, settings, session.legs, liquidated=person.liquidated_at is not None)
        rows.append(
            MarginRow(
                user_id=user,
                name=person.display_name,
                status=status,
                w=rules.money_text(judged.w) if judged else None,
                requirement=rules.money_text(judged.requirement) if judged else None,
                excess=rules.money_text(judged.excess) if judged else None,
                binding_leg=session.legs[judged.binding] if judged and judged.binding is not None else None,
                short={session.legs[k]: domain.qty_str(-v) for k, v in enumerate(x) if v < 0},
                short_used={
                    session.legs[k]: f"{Decimal(-v) / Decimal(caps[k]):.2f}" if caps[k] else "-"
                    for k, v in enumerate(x)
                    if v < 0
                },
                liquidated_at=person.liquidated_at,
            )
        )
    shown = {leg: domain.price_str(p) for leg, p in zip(session.legs, prices, strict=True) if p is not None}
    return rows, {"prices": shown, "ticks": ticks}


def require_shorting(session: Session) -> None:
    """Margin exists only where the session allows shorts: 409 `not_shorting` elsewhere (an empty answer
    would read like "you hold nothing")."""
    if not session.shorting:
        raise Conflict(
            f"Session {session.id} does not allow shorting: there is no margin to read (short_limit is off)",
            "not_shorting",
        )


def margin_for(session: Session, user, *, everyone: bool = False) -> dict:
    """What `GET /sessions/{id}/margin` answers: `user`'s own row (none when they hold nothing here), or
    with `everyone` every holder's, for those who see every order (the holdings endpoint's rule); the
    settings, and the prices and ticks they were judged at, as of now."""
    require_shorting(session)
    if everyone:
        require_every_order(session, user)
    now = clock.now()
    rows, judged = margin_rows(session, now, users=None if everyone else {user.pk})
    return {
        "session_id": session.id,
        "status": session.phase(now),
        "as_of_seq": session.last_seq,
        "at": now,
        **settings_out(session),
        "prices": judged["prices"],
        "ticks": judged["ticks"],
        "rows": [row.as_dict() for row in rows],
    }
