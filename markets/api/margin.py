"""`GET /sessions/{id}/margin`: bounded shorting's margin as the commands judge it (`selectors.margin`): per
participant W (the worst case over the scenario box), the requirement, the excess, the status (`ok`,
`reduce_only`, `liquidated`), the binding leg, the short per leg and the share of the limit it uses; with
the session's settings and the oracle prices and tick ids it was judged at. Yours by default; `all=true`:
every holder's, for the organiser, staff and auditors (403 `not_organiser` else), as the holdings endpoint.
A session without shorting answers 409 `not_shorting`."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from markets import selectors
from markets.api.errors import ERRORS
from markets.selectors import margin as reads

router = Router(tags=["bounded shorting"])


class MarginRowOut(Schema):
    user_id: int = Field(..., description="The holder, by immutable id")
    name: str = Field(..., description="The name people see")
    status: Literal["ok", "reduce_only", "liquidated"] = Field(
        ...,
        description="ok: W >= requirement; reduce_only: W under it, only trades that raise W pass; liquidated: "
        "W < 0 now, or liquidated earlier in the session",
    )
    W: str | None = Field(
        ..., description="Worst case of x.S over the box, sum(x+ S(1-m) - x- S(1+m)) (money, 12 dp); null: no price"
    )
    requirement: str | None = Field(..., description="initial_margin x the gross short value at the prices")
    excess: str | None = Field(..., description="W - requirement")
    binding_leg: str | None = Field(..., description="The short leg that weighs most in the worst case")
    short: dict[str, str] = Field(..., description="Units short per leg (only the legs short)")
    short_used: dict[str, str] = Field(..., description="Share of the per-participant short limit used, per leg")
    liquidated_at: dt.datetime | None


class MarginOut(Schema):
    session_id: str
    status: str
    as_of_seq: int
    at: dt.datetime = Field(..., description="The instant the prices were read at")
    short_limit: str | None
    margin_band: str | None
    initial_margin: str | None
    prices: dict[str, str] = Field(..., description="The oracle's latest price per leg at `at`")
    ticks: dict[str, int] = Field(..., description="The tick id behind each price")
    rows: list[MarginRowOut] = Field(..., description="Yours (empty if you hold nothing); all=true: every holder's")


@router.get(
    "/sessions/{session_id}/margin",
    response={200: MarginOut, **ERRORS},
    summary="Margin: W, requirement, status, short used per leg: yours (all=true: every holder's); 409 not_shorting",
)
def margin(
    request: HttpRequest,
    session_id: str,
    everyone: bool = Query(False, alias="all", description="Every holder (organiser, staff, auditors: else 403)"),
):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, reads.margin_for(session, request.auth, everyone=everyone))
