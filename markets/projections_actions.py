"""Corporate actions' read models: CorporateActionScheduled into an action row, CorporateActionApplied into
the session's q, every holding it moved, each holder's cash and the action's result, live and in replay,
by the same code. Registered in `projections.HANDLERS` when `markets.projections` loads."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from ledger.models import Event
from markets import domain
from markets.models import CorporateAction, Holding, Participant, Session
from markets.projections import _parse_at, handles, session_id_of


@handles("CorporateActionScheduled")
def _scheduled(event: Event, d: dict[str, Any]) -> None:
    CorporateAction.objects.create(
        session_id=session_id_of(event.stream),
        number=d["action"],
        kind=d["kind"],
        leg=d["leg"],
        effective_at=_parse_at(d["effective_at"]),
        params=d["params"],
        scheduled_at=event.at,
    )


@handles("CorporateActionApplied")
def _applied(event: Event, d: dict[str, Any]) -> None:
    """q as the action left it, each holding moved by its row of deltas, each holder's cash added to."""
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(q=d["q_after"])
    if d["kind"] == "split":  # ticks from before the cut read at the level after it (selectors.prices)
        session = Session.objects.only("splits").get(id=session_id)
        splits = dict(session.splits or {})
        splits[d["leg"]] = [*splits.get(d["leg"], []), [d["effective_at"], d["ratio"]]]
        Session.objects.filter(id=session_id).update(splits=splits)
    for user, deltas in d.get("deltas_by_id", {}).items():
        for k, delta in enumerate(deltas):
            if delta:
                Holding.objects.filter(session_id=session_id, participant__user_id=int(user), leg_index=k).update(
                    qty=F("qty") + delta
                )
    for user, deltas in d.get("initial_deltas_by_id", {}).items():
        for k, delta in enumerate(deltas):
            if delta:
                Holding.objects.filter(session_id=session_id, participant__user_id=int(user), leg_index=k).update(
                    initial=F("initial") + delta
                )
    for field, key in (("cash", "cash_by_id"), ("initial_cash", "initial_cash_by_id")):
        for user, amount in d.get(key, {}).items():
            holder = Participant.objects.get(session_id=session_id, user_id=int(user))
            setattr(
                holder, field, domain.money_str(domain.money_base(getattr(holder, field)) + domain.money_base(amount))
            )
            holder.save(update_fields=[field])
    CorporateAction.objects.filter(session_id=session_id, number=d["action"]).update(
        status=CorporateAction.Status.APPLIED, applied_at=event.at, result=d
    )


def snapshot(session_id: str) -> dict[str, Any]:
    """The actions' rows and each holder's cash, for replay's comparison."""
    return {
        "actions": list(
            CorporateAction.objects.filter(session_id=session_id)
            .order_by("number")
            .values("number", "kind", "leg", "effective_at", "params", "status", "scheduled_at", "applied_at", "result")
        ),
        "cash": list(
            Participant.objects.filter(session_id=session_id)
            .order_by("user_id")
            .values_list("user_id", "cash", "initial_cash")
        ),
    }


def cash_of(session_id: str) -> dict[int, int]:
    """Each holder's cash from corporate actions (money base units, 10**-12), those with some."""
    rows = Participant.objects.filter(session_id=session_id).values_list("user_id", "cash")
    return {u: domain.money_base(c) for u, c in rows if c and domain.money_base(c)}


def initial_cash_of(session_id: str) -> dict[int, int]:
    """The cash each holder's initial allocation would have been paid by the actions (money base units)."""
    rows = Participant.objects.filter(session_id=session_id).values_list("user_id", "initial_cash")
    return {u: domain.money_base(c) for u, c in rows if c and domain.money_base(c)}
