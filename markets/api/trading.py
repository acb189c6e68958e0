"""Endpoints for trading: RFQs, quotes, accepts, withdrawals, cancels, and the trades. Thin: one service
call or one selector each."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Router, Status

from markets import selectors, services
from markets.api.answers import QuoteOut, RFQOut, TradeOut
from markets.api.errors import ERRORS
from markets.api.idempotency import post
from markets.api.schemas import PathId, QuoteIn, RFQIn
from markets.models import RFQ, Quote, Trade
from markets.selectors import api as shapes

router = Router(tags=["trading"])


@post(router, "/sessions/{session_id}/rfq", response={201: RFQOut, **ERRORS}, summary="Request quotes (RFQ)")
def request_rfq(request: HttpRequest, session_id: str, payload: RFQIn):
    rfq = services.request_rfq(request.auth, session_id, payload.give_leg, payload.get_leg, payload.quantity)
    return Status(201, shapes.rfq_out(rfq, quotes=[]))  # as written: new, no quotes yet


@router.get("/sessions/{session_id}/rfqs", response={200: list[RFQOut], **ERRORS}, summary="RFQs and their quotes")
def list_rfqs(
    request: HttpRequest,
    session_id: str,
    status: Literal["open", "filled", "cancelled", "lapsed"] | None = None,
):
    session = selectors.session_for(session_id, request.auth)
    rfqs = shapes.rfqs().filter(session=session)
    if status:  # by the clock: an RFQ stored open reads lapsed from t2 on (as the log will say)
        rfqs = rfqs.filter(status__in=[status, RFQ.Status.OPEN] if status == RFQ.Status.LAPSED else [status])
    shaped = [shapes.rfq_out(r, ends=session.trading_ends) for r in rfqs.order_by("-id")]
    return Status(200, [r for r in shaped if status is None or r["status"] == status])


@post(router, "/rfq/{rfq_id}/quote", response={201: QuoteOut, **ERRORS}, summary="Quote a rate (makers)")
def provide_quote(request: HttpRequest, payload: QuoteIn, rfq_id: PathId):
    quote = services.provide_quote(request.auth, rfq_id, payload.rate, payload.ttl_seconds)
    return Status(201, shapes.quote_out(quote, quote.rfq.quantity))  # as written, its maker and RFQ with it


@post(router, "/rfq/{rfq_id}/cancel", response={200: RFQOut, **ERRORS}, summary="Cancel your RFQ")
def cancel_rfq(request: HttpRequest, rfq_id: PathId):
    rfq = services.cancel_rfq(request.auth, rfq_id)
    return Status(200, shapes.rfq_out(shapes.rfqs().get(id=rfq.id)))


@post(router, "/quotes/{quote_id}/accept", response={201: TradeOut, **ERRORS}, summary="Accept a quote: trade now")
def accept_quote(request: HttpRequest, quote_id: PathId):
    return Status(201, shapes.trade_out(services.accept_quote(request.auth, quote_id)))


@post(router, "/quotes/{quote_id}/withdraw", response={200: QuoteOut, **ERRORS}, summary="Withdraw your quote")
def withdraw_quote(request: HttpRequest, quote_id: PathId):
    quote = services.withdraw_quote(request.auth, quote_id)
    quote = Quote.objects.select_related("maker", "rfq").get(id=quote.id)
    return Status(200, shapes.quote_out(quote, quote.rfq.quantity))


@router.get("/sessions/{session_id}/trades", response={200: list[TradeOut], **ERRORS}, summary="Executed trades")
def list_trades(request: HttpRequest, session_id: str):
    session = selectors.session_for(session_id, request.auth)
    trades = Trade.objects.filter(session=session).select_related("taker", "maker").order_by("id")
    return Status(200, [shapes.trade_out(t) for t in trades])
