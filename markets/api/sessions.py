"""Endpoints for sessions: who you are, create, list, read, join, open, pause and resume trading,
holdings, the audit log, prices, settlement. Thin: one service call or one selector each."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from ledger import clock
from markets import access, domain, selectors, services
from markets.api.answers import (
    AllocationsOut,
    EventsPageOut,
    MeOut,
    ParticipantOut,
    PricesOut,
    SessionOut,
    SettlementOut,
)
from markets.api.errors import ERRORS
from markets.api.idempotency import post
from markets.api.schemas import Input, JoinIn, OpenIn, SessionCreateIn, SettleIn, Text
from markets.models import Session
from markets.selectors import api as shapes

router = Router(tags=["sessions"])
Statuses = Literal["created", "open", "closed", "settled", "cancelled"]


@router.get("/me", response={200: MeOut, **ERRORS}, tags=["auth"], summary="Who this token belongs to")
def me(request: HttpRequest):
    user = request.auth
    return Status(200, {"username": user.username, "can_create_sessions": user.has_perm("markets.add_session")})


@post(router, "/sessions", response={201: SessionOut, **ERRORS}, summary="Create a session (you organise it)")
def create_session(request: HttpRequest, payload: SessionCreateIn):
    session = services.create_session(
        request.auth,
        session_id=payload.session_id,
        legs=payload.legs,
        q=payload.q,
        title=payload.title,
        t1=payload.t1,
        t2=payload.t2,
        start_mode=payload.start_mode,
        end_mode=payload.end_mode,
        allocation_mode=payload.allocation_mode,
        fixing_rule=payload.fixing_rule,
        visibility=payload.visibility,
        mechanism=payload.mechanism,
        batch_seconds=payload.batch_seconds,
        batch_band=payload.batch_band,
        max_orders=payload.max_orders,
        min_order=payload.min_order,
        short_limit=payload.short_limit,
        margin_band=payload.margin_band,
        initial_margin=payload.initial_margin,
    )
    return Status(201, shapes.session_out(selectors.session_for(session.id, request.auth)))


@router.get("/sessions", response={200: list[SessionOut], **ERRORS}, summary="List the sessions you may see")
def list_sessions(request: HttpRequest, status: Statuses | None = None):
    sessions = access.visible_sessions(request.auth).select_related("created_by").prefetch_related("participants")
    shaped = [shapes.session_out(s) for s in sessions.order_by("-created_at", "id")]
    return Status(200, [s for s in shaped if status is None or s["status"] == status])


@router.get("/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="A session: status, legs, q")
def get_session(request: HttpRequest, session_id: str):
    return Status(200, shapes.session_out(selectors.session_for(session_id, request.auth)))


@post(
    router,
    "/sessions/{session_id}/participants",
    response={201: ParticipantOut, **ERRORS},
    summary="Join as trader or maker (organiser: add `username`)",
)
def join_session(request: HttpRequest, session_id: str, payload: JoinIn):
    participant = services.join_session(request.auth, session_id, payload.role, username=payload.username)
    return Status(201, shapes.participant_out(participant))


@post(
    router,
    "/sessions/{session_id}/open",
    response={200: SessionOut, **ERRORS},
    summary="Open trading with pro-rata or a custom allocation (organiser)",
)
def open_session(request: HttpRequest, session_id: str, payload: OpenIn | None = None):
    allocation = payload.allocation if payload is not None else None
    session = services.open_session(request.auth, session_id, allocation=allocation)
    return Status(200, shapes.session_out(selectors.session_for(session.id, request.auth)))


class PauseIn(Input):
    reason: Text = Field("", max_length=500, description="Why (shown to everyone on the floor and in the log)")


class PauseOut(Schema):
    session_id: str
    status: str = Field(..., description="As of now (pausing does not change it: the session stays open)")
    paused: bool
    paused_at: dt.datetime | None
    reason: str
    version: int
    last_seq: int


def _pause_out(session: Session) -> dict:
    phase = session.phase(clock.now())
    pause = shapes.pause_out(session, phase)
    return {
        "session_id": session.id,
        "status": phase,
        "paused": pause["paused"],
        "paused_at": pause["paused_at"],
        "reason": pause["pause_reason"],
        "version": session.version,
        "last_seq": session.last_seq,
    }


@post(
    router,
    "/sessions/{session_id}/pause",
    response={200: PauseOut, **ERRORS},
    summary="Pause trading: RFQs, quotes and accepts are refused (409 trading_paused) until resumed (organiser)",
)
def pause_trading(request: HttpRequest, session_id: str, payload: PauseIn | None = None):
    session = services.pause_trading(request.auth, session_id, payload.reason if payload is not None else "")
    return Status(200, _pause_out(session))


@post(
    router,
    "/sessions/{session_id}/resume",
    response={200: PauseOut, **ERRORS},
    summary="Resume trading after a pause (organiser)",
)
def resume_trading(request: HttpRequest, session_id: str):
    return Status(200, _pause_out(services.resume_trading(request.auth, session_id)))


@router.get(
    "/sessions/{session_id}/allocations", response={200: AllocationsOut, **ERRORS}, summary="Current holdings x"
)
def allocations(request: HttpRequest, session_id: str):
    return Status(200, shapes.allocations(selectors.session_for(session_id, request.auth)))


@router.get(
    "/sessions/{session_id}/events",
    response={200: EventsPageOut, **ERRORS},
    tags=["audit"],
    summary="The session's audit log (ledger events), paged by seq; others' orders sealed until their batch clears",
)
def list_events(
    request: HttpRequest,
    session_id: str,
    after: int = Query(0, ge=0, le=domain.MAX_ID, description="Return events with seq greater than this"),
    limit: int = Query(100, ge=1, le=1000),
):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, shapes.events_page(session, after, limit, request.auth))


@router.get(
    "/sessions/{session_id}/prices", response={200: PricesOut, **ERRORS}, tags=["oracle"], summary="Oracle prices"
)
def prices(
    request: HttpRequest,
    session_id: str,
    history: int = Query(0, ge=0, le=1000, description="Also return up to this many recent ticks per leg"),
    source: str | None = Query(None, min_length=1, max_length=64, description="Only this feed's ticks"),
):
    return Status(200, shapes.prices(selectors.session_for(session_id, request.auth), history, source))


@post(
    router,
    "/sessions/{session_id}/settle",
    response={200: SettlementOut, **ERRORS},
    tags=["settlement"],
    summary="Settle: given prices, or the oracle's fixing (organiser)",
)
def settle_session(request: HttpRequest, session_id: str, payload: SettleIn | None = None):
    prices = payload.prices if payload is not None else None
    session = services.settle_session(request.auth, session_id, prices=prices)
    return Status(200, shapes.settlement_out(session))


@router.get(
    "/sessions/{session_id}/payouts",
    response={200: SettlementOut, **ERRORS},
    tags=["settlement"],
    summary="Settlement prices and payouts (empty until settled)",
)
def payouts(request: HttpRequest, session_id: str):
    return Status(200, shapes.settlement_out(selectors.session_for(session_id, request.auth)))
