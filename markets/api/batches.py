"""Endpoints for batch auctions: place and cancel sealed limit orders, read your orders (everyone's for the
organiser, staff and auditors), held / reserved / available per leg, cut a batch now (the organiser), and
the batches with their prices and fills. Thin: one service call or one selector each."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Status

from ledger import clock
from markets import selectors, services
from markets.api.answers import BatchOut, OrderOut, PositionsOut
from markets.api.errors import ERRORS
from markets.api.idempotency import post
from markets.api.schemas import OrderIn, PathId
from markets.selectors import api as shapes
from markets.selectors import batches as reads

router = Router(tags=["batch auctions"])
OrderStatus = Literal["resting", "filled", "cancelled", "expired", "lapsed"]


@post(
    router,
    "/sessions/{session_id}/orders",
    response={201: OrderOut, **ERRORS},
    summary="Place a sealed limit order for the next batch (reserves what it may give)",
)
def place_order(request: HttpRequest, session_id: str, payload: OrderIn):
    order = services.place_order(
        request.auth,
        session_id,
        payload.give_leg,
        payload.get_leg,
        payload.quantity,
        payload.limit_rate,
        good_for=payload.good_for,
        gtc=bool(payload.gtc),
    )
    return Status(201, shapes.orders_out(order.session, [order])[0])


@post(
    router,
    "/orders/{order_id}/cancel",
    response={200: OrderOut, **ERRORS},
    summary="Cancel your resting order (until its batch's cut); frees what it reserved",
)
def cancel_order(request: HttpRequest, order_id: PathId):
    order = services.cancel_order(request.auth, order_id)
    return Status(200, shapes.orders_out(order.session, [order])[0])


@router.get(
    "/sessions/{session_id}/orders",
    response={200: list[OrderOut], **ERRORS},
    summary="Your orders, oldest first (all=true: everyone's, for the organiser, staff and auditors)",
)
def list_orders(
    request: HttpRequest,
    session_id: str,
    status: OrderStatus | None = None,
    everyone: bool = Query(
        False, alias="all", description="Every participant's orders (organiser, staff, auditors: else 403)"
    ),
    after: int = Query(0, ge=0, description="Orders with an id greater than this (page on with the last id)"),
    limit: int = Query(reads.MAX_PAGE, ge=1, le=reads.MAX_PAGE),
):
    session = selectors.session_for(session_id, request.auth)
    orders = reads.orders_for(
        session, request.auth, everyone=everyone, status=status, now=clock.now(), after=after, limit=limit
    )
    return Status(200, shapes.orders_out(session, orders))


@router.get(
    "/sessions/{session_id}/holdings",
    response={200: PositionsOut, **ERRORS},
    summary="Held, reserved (by resting orders) and available per leg: yours (all=true: every holder's)",
)
def holdings(
    request: HttpRequest,
    session_id: str,
    everyone: bool = Query(False, alias="all", description="Every holder (organiser, staff, auditors: else 403)"),
):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, shapes.positions_out(session, reads.positions_for(session, request.auth, everyone=everyone)))


@post(
    router,
    "/sessions/{session_id}/batches/clear",
    response={200: BatchOut, **ERRORS},
    summary="Clear the book now (organiser): every order placed before this instant",
)
def clear_batch(request: HttpRequest, session_id: str):
    cut = services.clear_batch(request.auth, session_id)
    session = selectors.session_for(session_id, request.auth)
    return Status(200, shapes.batches_out(session, [cut])[0])


@router.get(
    "/sessions/{session_id}/batches",
    response={200: list[BatchOut], **ERRORS},
    summary="The recorded batches, oldest first: prices per leg, volume, every fill",
)
def list_batches(
    request: HttpRequest,
    session_id: str,
    after: int = Query(0, ge=0, description="Batches numbered after this (page on with the last number)"),
    limit: int = Query(100, ge=1, le=1000),
):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, shapes.batches_out(session, reads.batches_of(session, after=after, limit=limit)))
