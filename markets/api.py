"""The JSON API (django-ninja), mounted at /api/v1/; OpenAPI docs at /api/v1/docs.

Thin like the views: authenticate the token's user, validate the body with a pydantic schema, call one
service (which checks permissions and writes) or read the projection, shape the answer. The API never
writes market state itself.

- Auth: `Authorization: Bearer <token>` (markets.tokens); every endpoint needs it.
- Errors: {"code": "...", "message": "..."} with the service's status (400/401/403/404/409/422).
- Numbers: decimal strings out; JSON numbers or strings in, parsed as Decimal (never float).
- Every POST honours an `Idempotency-Key` header (see `idempotent`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Query, Router, Status
from ninja.decorators import decorate_view
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from ledger import clock, store
from ledger.models import Event
from ledger.store import format_at
from markets import access, domain, selectors, services, tokens
from markets.api_schemas import (
    AllocationsOut,
    ErrorOut,
    EventsPageOut,
    JoinIn,
    MeOut,
    OpenIn,
    ParticipantOut,
    PathId,
    PricesOut,
    QuoteIn,
    QuoteOut,
    RFQIn,
    RFQOut,
    SessionCreateIn,
    SessionOut,
    SettleIn,
    SettlementOut,
    TradeOut,
)
from markets.errors import DomainError, NotFound
from markets.models import (
    RFQ,
    Holding,
    IdempotencyRecord,
    Participant,
    Payout,
    Quote,
    Session,
    Settlement,
    Trade,
)
from oracle.models import Tick

logger = logging.getLogger(__name__)

MAX_ID = 2**63 - 1
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


# ---------------------------------------------------------------- parsing and auth


class ExactJSONParser(Parser):
    """JSON bodies with numbers read as Decimal (exact, never float) and no NaN/Infinity.

    (Ninja calls this only for a non-empty body; an empty one leaves optional bodies unset.)
    """

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            return json.loads(request.body, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            request._api_parse_error = _parse_error_text(exc)  # type: ignore[attr-defined]
            raise


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _parse_error_text(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"The request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "The request body is not valid UTF-8 JSON"
    if isinstance(exc, RecursionError):
        return "The request body is nested too deeply"
    return f"The request body is not valid JSON: {str(exc)[:200]}"


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` -> the token's user (cached on the request)."""

    def authenticate(self, request: HttpRequest, token: str):
        if not hasattr(request, "_api_user"):
            request._api_user = tokens.authenticate(token.strip())  # type: ignore[attr-defined]
        user = request._api_user  # type: ignore[attr-defined]
        if user is not None:
            request.user = user
        return user


bearer = BearerToken()

api = NinjaAPI(
    title="Session Contracts API",
    version="1",
    description=(
        "RFQ trading of reallocations in a ring-fenced basket pool. Authenticate with "
        "`Authorization: Bearer <token>` (make one with `manage.py create_api_token USERNAME`). "
        "Quantities (6 dp), rates (8 dp), prices (6 dp) and money (12 dp) are decimal strings in "
        "responses; send JSON numbers or strings. Every POST accepts an `Idempotency-Key` header."
    ),
    auth=bearer,
    parser=ExactJSONParser(),
    urls_namespace="api",
    docs_url="/docs",
)


# ---------------------------------------------------------------- errors


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message}, status=status)


@api.exception_handler(DomainError)
def _domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    response = _error(request, exc.status, exc.code, exc.message)
    response._api_transient = exc.code == "busy"  # type: ignore[attr-defined]
    return response


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload")]
    where = ".".join(loc)
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if not where and error.get("type") == "missing":
        return "A JSON object body is required"
    return f"{where}: {message}" if where else message


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = list(exc.errors)
    message = "; ".join(_describe(e) for e in errors[:10]) or "The request is invalid"
    kinds = {e.get("type") for e in errors}
    code = (
        kinds.pop() if len(kinds) == 1 and next(iter(kinds)) in ("invalid_number", "invalid_id") else "invalid_request"
    )
    return _error(request, 422, code, message[:2000])


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(
        request, 401, "unauthenticated", "Send 'Authorization: Bearer <token>' with a valid, active API token"
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    parse_error = getattr(request, "_api_parse_error", None)
    if exc.status_code == 400 and parse_error:
        return _error(request, 400, "malformed_json", parse_error)
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "throttled"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", str(exc) or "Not found")


@api.exception_handler(SuspiciousOperation)
def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return _error(request, 400, "bad_request", str(exc)[:200] or "Bad request")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    problem = store.storage_problem(exc) if isinstance(exc, DatabaseError) else None
    if problem:  # e.g. the idempotency key's row could not be written
        logger.error("API storage error on %s %s: %s", request.method, request.path, exc)
        return _error(request, 503, "storage_unavailable", f"Not saved: {problem}. Nothing was changed.")
    logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    return _error(request, 500, "internal_error", "Something went wrong on our side; nothing was changed")


# ---------------------------------------------------------------- idempotency

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_WAIT_SECONDS = 30.0
IDEMPOTENCY_POLL_SECONDS = 0.02
_KEY_RE = re.compile(r"^[\x20-\x7e]{1,255}$")
IDEMPOTENCY_OPENAPI = {
    "parameters": [
        {
            "in": "header",
            "name": IDEMPOTENCY_HEADER,
            "required": False,
            "description": "A retry with the same key (same user, same body) returns the first response "
            "and executes nothing twice; a different body with the same key is refused (422).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x20-\x7e]+$"},
        }
    ]
}


def _fingerprint(request: HttpRequest, body: bytes) -> str:
    digest = hashlib.sha256(f"{request.method} {request.get_full_path()}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(record.body, status=record.status, content_type=record.content_type or None)
    response["Idempotent-Replayed"] = "true"
    return response


def _claim(request: HttpRequest, user, key: str, fingerprint: str) -> IdempotencyRecord | HttpResponse:
    """Insert the key's row (its own transaction), or answer from the first request with this key.

    A concurrent request with the key waits until the first one has stored its response.
    """
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    user=user, key=key, fingerprint=fingerprint, created_at=clock.now()
                )
        except IntegrityError:
            pass
        first = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if first is None:  # the first request failed and released the key: claim it again
            continue
        if first.fingerprint != fingerprint:
            return _error(
                request,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request; use a new key",
            )
        if first.status is not None:
            return _replay(first)
        if time.monotonic() >= deadline:
            return _error(
                request, 409, "idempotency_in_progress", "A request with this Idempotency-Key is still running"
            )
        time.sleep(IDEMPOTENCY_POLL_SECONDS)


def _finish(record: IdempotencyRecord, response: HttpResponse | None) -> None:
    """Store the response for retries; release the key if the request failed in a retryable way."""
    transient = response is None or response.status_code >= 500 or getattr(response, "_api_transient", False)
    if transient or getattr(response, "streaming", False):
        IdempotencyRecord.objects.filter(pk=record.pk, status__isnull=True).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=response.status_code,
        content_type=response.get("Content-Type", "")[:100],
        body=response.content.decode("utf-8"),
        completed_at=clock.now(),
    )


def idempotent(run):
    """Wrap an operation's whole run (auth, parsing, handler, error handling) with Idempotency-Key.

    The key's row is claimed before the command runs, in its own transaction, under a unique
    (user, key) constraint: of two racing requests one claims it and runs, the other waits for the
    stored response and returns it. The same key with another body (or path) is refused.
    """

    @functools.wraps(run)
    def wrapper(request: HttpRequest, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return run(request, *args, **kwargs)
        user = bearer(request)
        if user is None:
            return run(request, *args, **kwargs)  # answers 401
        if not _KEY_RE.match(key) or not key.strip():
            return _error(
                request, 422, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters"
            )
        try:
            body = request.body
        except SuspiciousOperation:
            return run(request, *args, **kwargs)  # answers 400 (request too large)
        claimed = _claim(request, user, key, _fingerprint(request, body))
        if isinstance(claimed, HttpResponse):
            return claimed
        response = None
        try:
            response = run(request, *args, **kwargs)
        finally:
            _finish(claimed, response)
        return response

    return wrapper


def _post(router: Router, path: str, **kwargs):
    """router.post with the shared error responses, the Idempotency-Key header and its handling."""

    def register(fn):
        decorated = decorate_view(idempotent)(fn)
        return router.post(path, openapi_extra=IDEMPOTENCY_OPENAPI, **kwargs)(decorated)

    return register


# ---------------------------------------------------------------- shaping read models


_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _sid(session_id: str) -> str:
    """A session id from the path; one that cannot exist is a 404 before any query (no NULs for the DB)."""
    if not _SESSION_ID_RE.match(session_id):
        raise NotFound(f"Unknown session {session_id[:64]!r}", "session_not_found")
    return session_id


def _session_or_404(session_id: str, user) -> Session:
    """The session, if it exists and `user` may see it (`markets.access`: the floor and sockets ask the same)."""
    try:
        session = Session.objects.select_related("created_by").get(id=_sid(session_id))
    except Session.DoesNotExist:
        raise NotFound(f"Unknown session {str(session_id)[:64]!r}", "session_not_found") from None
    access.require_view(session, user)
    return session


def _session_out(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "status": session.phase(clock.now()),
        "status_note": selectors.status_note(session),
        "legs": list(session.legs),
        "q": [domain.qty_str(x) for x in session.q],
        "t1": session.t1,
        "t2": session.t2,
        "start_mode": session.start_mode,
        "end_mode": session.end_mode,
        "allocation_mode": session.allocation_mode,
        "fixing_rule": session.fixing_rule,
        "visibility": session.visibility,
        "created_by": session.created_by.username,
        "created_at": session.created_at,
        "opened_at": session.opened_at,
        "settled_at": session.settled_at,
        "waiting_reason": session.waiting_reason,
        "version": session.version,
        "last_seq": session.last_seq,
        "participants": [_participant_out(p) for p in session.participants.all()],
    }


def _participant_out(participant: Participant) -> dict[str, Any]:
    return {
        "session_id": participant.session_id,
        "username": participant.username,
        "role": participant.role,
        "joined_at": participant.joined_at,
    }


def _quote_out(quote: Quote, quantity: int) -> dict[str, Any]:
    return {
        "id": quote.id,
        "rfq_id": quote.rfq_id,
        "maker": quote.maker.username,
        "rate": domain.rate_str(quote.rate),
        "receive": domain.qty_str(domain.trade_receive(quantity, quote.rate)),
        "expires_at": quote.expires_at,
        "status": quote.status_at(clock.now()),
        "created_at": quote.created_at,
    }


def _rfq_out(rfq: RFQ) -> dict[str, Any]:
    return {
        "id": rfq.id,
        "session_id": rfq.session_id,
        "taker": rfq.taker.username,
        "give_leg": rfq.give_leg,
        "get_leg": rfq.get_leg,
        "quantity": domain.qty_str(rfq.quantity),
        "status": rfq.status,
        "created_at": rfq.created_at,
        "closed_at": rfq.closed_at,
        "quotes": [_quote_out(q, rfq.quantity) for q in rfq.quotes.all()],
    }


def _rfqs():
    quotes = Quote.objects.select_related("maker").order_by("id")
    return RFQ.objects.select_related("taker").prefetch_related(Prefetch("quotes", queryset=quotes))


def _trade_out(trade: Trade) -> dict[str, Any]:
    return {
        "id": trade.id,
        "session_id": trade.session_id,
        "rfq_id": trade.rfq_id,
        "quote_id": trade.quote_id,
        "taker": trade.taker.username,
        "maker": trade.maker.username,
        "give_leg": trade.give_leg,
        "get_leg": trade.get_leg,
        "give_qty": domain.qty_str(trade.give_qty),
        "get_qty": domain.qty_str(trade.get_qty),
        "rate": domain.rate_str(trade.rate),
        "executed_at": trade.executed_at,
        "seq": trade.seq,
    }


def _settlement_out(session: Session) -> dict[str, Any]:
    settlement = Settlement.objects.filter(session=session).first()
    payouts = Payout.objects.filter(session=session).select_related("participant").order_by("participant__username")
    return {
        "session_id": session.id,
        "status": session.status,
        "settled": settlement is not None,
        "settled_at": settlement.settled_at if settlement else None,
        "prices": {leg: domain.price_str(settlement.prices[leg]) for leg in session.legs} if settlement else {},
        "fixing": settlement.fixing if settlement else None,
        "total": settlement.total if settlement else None,
        "expected": settlement.expected if settlement else None,
        "payouts": [
            {"username": p.participant.username, "role": p.participant.role, "amount": p.amount} for p in payouts
        ],
    }


def _tick_out(tick: Tick) -> dict[str, Any]:
    return {"price": domain.price_str(tick.price), "at": tick.at, "source": tick.source}


# ---------------------------------------------------------------- endpoints

router = Router(tags=["sessions"])
trading = Router(tags=["trading"])


@router.get("/me", response={200: MeOut, **ERRORS}, tags=["auth"], summary="Who this token belongs to")
def me(request: HttpRequest):
    user = request.auth
    return Status(200, {"username": user.username, "can_create_sessions": user.has_perm("markets.add_session")})


@_post(router, "/sessions", response={201: SessionOut, **ERRORS}, summary="Create a session (you organise it)")
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
        fixing_rule=payload.fixing_rule.as_dict() if payload.fixing_rule else None,
        visibility=payload.visibility,
    )
    return Status(201, _session_out(_session_or_404(session.id, request.auth)))


@router.get("/sessions", response={200: list[SessionOut], **ERRORS}, summary="List sessions, newest first")
def list_sessions(
    request: HttpRequest, status: Literal["created", "open", "closed", "settled", "cancelled"] | None = None
):
    sessions = access.visible_sessions(request.auth).select_related("created_by").prefetch_related("participants")
    shaped = [_session_out(s) for s in sessions.order_by("-created_at", "id")]
    return Status(200, [s for s in shaped if status is None or s["status"] == status])


@router.get("/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="A session: status, legs, q")
def get_session(request: HttpRequest, session_id: str):
    return Status(200, _session_out(_session_or_404(session_id, request.auth)))


@_post(
    router,
    "/sessions/{session_id}/participants",
    response={201: ParticipantOut, **ERRORS},
    summary="Join as trader or maker (organiser: add `username`)",
)
def join_session(request: HttpRequest, session_id: str, payload: JoinIn):
    participant = services.join_session(request.auth, _sid(session_id), payload.role, username=payload.username)
    return Status(201, _participant_out(participant))


@_post(
    router,
    "/sessions/{session_id}/open",
    response={200: SessionOut, **ERRORS},
    summary="Open trading with pro-rata or a custom allocation (organiser)",
)
def open_session(request: HttpRequest, session_id: str, payload: OpenIn | None = None):
    allocation = payload.allocation if payload is not None else None
    session = services.open_session(request.auth, _sid(session_id), allocation=allocation)
    return Status(200, _session_out(_session_or_404(session.id, request.auth)))


@router.get(
    "/sessions/{session_id}/allocations", response={200: AllocationsOut, **ERRORS}, summary="Current holdings x"
)
def allocations(request: HttpRequest, session_id: str):
    session = _session_or_404(session_id, request.auth)
    legs = list(session.legs)
    rows: dict[str, dict[str, Any]] = {}
    totals = [0] * len(legs)
    holdings = (
        Holding.objects.filter(session=session)
        .select_related("participant")
        .order_by("participant__username", "leg_index")
    )
    for h in holdings:
        row = rows.setdefault(
            h.participant.username,
            {"username": h.participant.username, "role": h.participant.role, "x": {}, "initial": {}},
        )
        row["x"][h.leg] = domain.qty_str(h.qty)
        row["initial"][h.leg] = domain.qty_str(h.initial)
        totals[h.leg_index] += h.qty
    return Status(
        200,
        {
            "session_id": session.id,
            "status": session.status,
            "legs": legs,
            "as_of_seq": session.last_seq,
            "holdings": list(rows.values()),
            "totals": {leg: domain.qty_str(t) for leg, t in zip(legs, totals, strict=True)},
        },
    )


@_post(trading, "/sessions/{session_id}/rfq", response={201: RFQOut, **ERRORS}, summary="Request quotes (RFQ)")
def request_rfq(request: HttpRequest, session_id: str, payload: RFQIn):
    rfq = services.request_rfq(request.auth, _sid(session_id), payload.give_leg, payload.get_leg, payload.quantity)
    return Status(201, _rfq_out(_rfqs().get(id=rfq.id)))


@trading.get("/sessions/{session_id}/rfqs", response={200: list[RFQOut], **ERRORS}, summary="RFQs and their quotes")
def list_rfqs(request: HttpRequest, session_id: str, status: Literal["open", "filled", "cancelled"] | None = None):
    session = _session_or_404(session_id, request.auth)
    rfqs = _rfqs().filter(session=session)
    if status:
        rfqs = rfqs.filter(status=status)
    return Status(200, [_rfq_out(r) for r in rfqs.order_by("-id")])


@_post(trading, "/rfq/{rfq_id}/quote", response={201: QuoteOut, **ERRORS}, summary="Quote a rate (makers)")
def provide_quote(request: HttpRequest, payload: QuoteIn, rfq_id: PathId):
    quote = services.provide_quote(request.auth, rfq_id, payload.rate, payload.ttl_seconds)
    quote = Quote.objects.select_related("maker", "rfq").get(id=quote.id)
    return Status(201, _quote_out(quote, quote.rfq.quantity))


@_post(trading, "/rfq/{rfq_id}/cancel", response={200: RFQOut, **ERRORS}, summary="Cancel your RFQ")
def cancel_rfq(request: HttpRequest, rfq_id: PathId):
    rfq = services.cancel_rfq(request.auth, rfq_id)
    return Status(200, _rfq_out(_rfqs().get(id=rfq.id)))


@_post(trading, "/quotes/{quote_id}/accept", response={201: TradeOut, **ERRORS}, summary="Accept a quote: trade now")
def accept_quote(request: HttpRequest, quote_id: PathId):
    trade = services.accept_quote(request.auth, quote_id)
    return Status(201, _trade_out(Trade.objects.select_related("taker", "maker").get(id=trade.id)))


@_post(trading, "/quotes/{quote_id}/withdraw", response={200: QuoteOut, **ERRORS}, summary="Withdraw your quote")
def withdraw_quote(request: HttpRequest, quote_id: PathId):
    quote = services.withdraw_quote(request.auth, quote_id)
    quote = Quote.objects.select_related("maker", "rfq").get(id=quote.id)
    return Status(200, _quote_out(quote, quote.rfq.quantity))


@trading.get("/sessions/{session_id}/trades", response={200: list[TradeOut], **ERRORS}, summary="Executed trades")
def list_trades(request: HttpRequest, session_id: str):
    session = _session_or_404(session_id, request.auth)
    trades = Trade.objects.filter(session=session).select_related("taker", "maker").order_by("id")
    return Status(200, [_trade_out(t) for t in trades])


@router.get(
    "/sessions/{session_id}/events",
    response={200: EventsPageOut, **ERRORS},
    tags=["audit"],
    summary="The session's audit log (ledger events), paged by seq",
)
def list_events(
    request: HttpRequest,
    session_id: str,
    after: int = Query(0, ge=0, le=MAX_ID, description="Return events with seq greater than this"),
    limit: int = Query(100, ge=1, le=1000),
):
    session = _session_or_404(session_id, request.auth)
    rows = list(Event.objects.filter(stream=session.stream, seq__gt=after).order_by("seq")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    events = [
        {
            "seq": e.seq,
            "stream": e.stream,
            "version": e.version,
            "type": e.type,
            "payload": e.data,
            "at": format_at(e.at),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in rows
    ]
    return Status(
        200,
        {
            "session_id": session.id,
            "events": events,
            "next_after": rows[-1].seq if rows else after,
            "has_more": has_more,
        },
    )


@router.get(
    "/sessions/{session_id}/prices", response={200: PricesOut, **ERRORS}, tags=["oracle"], summary="Oracle prices"
)
def prices(
    request: HttpRequest,
    session_id: str,
    history: int = Query(0, ge=0, le=1000, description="Also return up to this many recent ticks per leg"),
):
    session = _session_or_404(session_id, request.auth)
    legs = list(session.legs)
    latest: dict[str, Any] = {}
    recent: dict[str, list[dict[str, Any]]] = {}
    for leg in legs:
        ticks = Tick.objects.filter(session_id=session.id, symbol=leg).order_by("-at", "-id")
        newest = list(ticks[: max(history, 1)])
        if newest:
            latest[leg] = _tick_out(newest[0])
        if history:
            recent[leg] = [_tick_out(t) for t in reversed(newest)]
    return Status(200, {"session_id": session.id, "legs": legs, "latest": latest, "history": recent})


@_post(
    router,
    "/sessions/{session_id}/settle",
    response={200: SettlementOut, **ERRORS},
    tags=["settlement"],
    summary="Settle: given prices, or the oracle's fixing (organiser)",
)
def settle_session(request: HttpRequest, session_id: str, payload: SettleIn | None = None):
    prices = payload.prices if payload is not None else None
    session = services.settle_session(request.auth, _sid(session_id), prices=prices)
    return Status(200, _settlement_out(session))


@router.get(
    "/sessions/{session_id}/payouts",
    response={200: SettlementOut, **ERRORS},
    tags=["settlement"],
    summary="Settlement prices and payouts (empty until settled)",
)
def payouts(request: HttpRequest, session_id: str):
    return Status(200, _settlement_out(_session_or_404(session_id, request.auth)))


api.add_router("", router)
api.add_router("", trading)
