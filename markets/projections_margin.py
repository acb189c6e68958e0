"""Bounded shorting's read models: PositionLiquidated and AutoDeleveraged into participants and holdings,
and a session's shorting settings from SessionCreated, live and in replay, by the same code.
Registered in `projections.HANDLERS` when `markets.projections` loads (it imports this module last)."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from ledger.models import Event
from markets.domain import margin as rules
from markets.models import Holding, Participant
from markets.projections import handles, session_id_of


def margin_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A SessionCreated payload's shorting settings, as Session fields (old logs: off)."""
    settings = rules.settings_of(d)
    return {
        "short_limit": settings.short_limit,
        "margin_band": settings.margin_band,
        "initial_margin": settings.initial_margin,
    }


@handles("PositionLiquidated")
def _position_liquidated(event: Event, d: dict[str, Any]) -> None:
    """W fell below 0: the participant is liquidated from now on; in a batch session its buy-back orders
    (the OrderPlaced events that follow) wait for the next batch."""
    Participant.objects.filter(session_id=session_id_of(event.stream), user_id=d["user_id"]).update(
        liquidated_at=event.at, liquidation_pending=d["method"] == "buy_back"
    )


@handles("AutoDeleveraged")
def _auto_deleveraged(event: Event, d: dict[str, Any]) -> None:
    """The shorts left closed against the ranked holders, every unit as the event records it."""
    session_id = session_id_of(event.stream)
    ids = dict(Participant.objects.filter(session_id=session_id).values_list("user_id", "id"))
    for user, row in sorted(d["deltas_by_id"].items()):
        for k, delta in enumerate(row):
            if delta:
                Holding.objects.filter(participant_id=ids[int(user)], leg_index=k).update(qty=F("qty") + delta)
    Participant.objects.filter(session_id=session_id, user_id=d["user_id"]).update(liquidation_pending=False)
