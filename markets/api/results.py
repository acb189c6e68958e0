"""`GET /sessions/{id}/results`: a settled session's results, per holder the payout, the initial
allocation's value at the same fixing, the P&L between them and a rank by P&L (`selectors.results`, the
computation the results page and `payouts.csv` show). Whoever may see the session may read them, as its
payouts; 409 `not_settled` before the settlement."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from markets import selectors
from markets.api.errors import ERRORS

router = Router(tags=["settlement"])


class ResultOut(Schema):
    rank: int = Field(..., description="By P&L, highest first; equal P&Ls share a rank (1, 1, 3)")
    user_id: int = Field(..., description="The account, by its immutable id")
    username: str = Field(..., description="The account's username")
    name: str = Field(..., description="The name people see (as typed when joining by link, else the full name)")
    role: str
    payout: str = Field(..., description="x_i . S_t2 as the settlement recorded it (12 dp)")
    initial_value: str = Field(..., description="The initial allocation at the same prices, x0_i . S_t2 (12 dp)")
    pnl: str = Field(..., description="payout - initial_value, exact (12 dp)")
    gross: str | None = Field(None, description="x_i . S_t2 before a settlement haircut (null: there was none)")
    haircut: str | None = Field(
        None, description="payout - gross: below 0 where the deficit was taken, above 0 where raised to 0 (null: none)"
    )


class ResultTotalsOut(Schema):
    payout: str = Field(..., description="Σ payouts")
    expected: str = Field(..., description="q . S_t2: equals Σ payouts exactly")
    initial_value: str = Field(..., description="Σ initial values: also q . S_t2, since Σ x0_i = q")
    pnl: str = Field(..., description="Σ P&L: exactly 0")
    exact: bool = Field(..., description="Σ payouts = q . S_t2 and Σ P&L = 0, both exactly")


class HaircutOut(Schema):
    deficit: str = Field(..., description="Σ of the negative x_i . S_t2 (a fixing outside the margin box)")
    factor: str = Field(..., description="q.S / (q.S + deficit), exact, applied to the positive payouts")


class ResultsOut(Schema):
    session_id: str
    legs: list[str]
    prices: dict[str, str] = Field(..., description="S_t2 per leg, the settlement's prices")
    settled_at: dt.datetime
    results: list[ResultOut] = Field(..., description="Best P&L first; ties by name")
    totals: ResultTotalsOut
    haircut: HaircutOut | None = Field(None, description="The settlement haircut (bounded shorting; null: none)")


@router.get(
    "/sessions/{session_id}/results",
    response={200: ResultsOut, **ERRORS},
    summary="Results: payout, P&L against the initial allocation at the fixing, rank (409 until settled)",
)
def results(request: HttpRequest, session_id: str):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, selectors.session_results(session).as_json())
