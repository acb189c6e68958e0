"""Every error the API gives is `{"code", "message"}` JSON: the service's refusals with their status,
validation and parse errors, an unknown route or a wrong method (the middleware, for what never reaches
django-ninja), a storage failure (503) and, last, anything unexpected (500, logged)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from ledger import store
from markets.api.answers import ConflictOut, ErrorOut
from markets.errors import DomainError, http_status

logger = logging.getLogger(__name__)

ERRORS = {status: ErrorOut for status in (400, 401, 403, 404, 422)} | {409: ConflictOut}
# Validation errors that keep their own code (one kind of error in the request): the schemas' custom ones.
OWN_CODES = ("invalid_number", "invalid_id", "invalid_lifetime", "invalid_fixing_rule", "invalid_time")


# A refusal's figures that travel beside its code and message: the margin rule's W, requirement and binding
# leg, and whose side of the trade broke it ("you", or e.g. "the maker mm").
FIGURES = ("W", "requirement", "binding_leg", "who")


def error_response(status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> HttpResponse:
    body = {"code": code, "message": message} | (extra or {})
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    return error_response(status, code, message)


def _figures(exc: DomainError) -> dict[str, Any]:
    detail = getattr(exc, "detail", None)
    return {key: detail[key] for key in FIGURES if key in detail} if isinstance(detail, dict) else {}


def _domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    response = error_response(http_status(exc), exc.code, exc.message, _figures(exc))
    response._api_transient = exc.code == "busy"  # type: ignore[attr-defined]
    return response


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload")]
    where = ".".join(loc)
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if not where and error.get("type") == "missing":
        return "A JSON object body is required"
    return f"{where}: {message}" if where else message


def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = list(exc.errors)
    message = "; ".join(_describe(e) for e in errors[:10]) or "The request is invalid"
    kinds = {e.get("type") for e in errors}
    code = kinds.pop() if len(kinds) == 1 and next(iter(kinds)) in OWN_CODES else "invalid_request"
    return _error(request, 422, code, message[:2000])


def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(
        request, 401, "unauthenticated", "Send 'Authorization: Bearer <token>' with a valid, active API token"
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    parse_error = getattr(request, "_api_parse_error", None)
    if exc.status_code == 400 and parse_error:
        code, message = parse_error
        return _error(request, 400, code, message)
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "throttled"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", str(exc) or "Not found")


def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return _error(request, 400, "bad_request", str(exc)[:200] or "Bad request")


def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    problem = store.storage_problem(exc) if isinstance(exc, DatabaseError) else None
    if problem:  # e.g. the idempotency key's row could not be written
        logger.error("API storage error on %s %s: %s", request.method, request.path, exc)
        return _error(request, 503, "storage_unavailable", f"Not saved: {problem}. Nothing was changed.")
    logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    return _error(request, 500, "internal_error", "Something went wrong on our side; nothing was changed")


def install(api: NinjaAPI) -> None:
    """Register the handlers above on the API (most specific first, `Exception` last)."""
    for exc, handler in (
        (DomainError, _domain_error),
        (ValidationError, _validation_error),
        (AuthenticationError, _auth_error),
        (HttpError, _http_error),
        (Http404, _not_found),
        (SuspiciousOperation, _suspicious),
        (Exception, _unexpected),
    ):
        api.add_exception_handler(exc, handler)


# ---------------------------------------------------------------- what never reaches django-ninja

API_PREFIX = "/api/"
CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "throttled",
    500: "internal_error",
}


def _message(request: HttpRequest, response: HttpResponse) -> str:
    status = response.status_code
    if status == 404:
        return f"No such endpoint: {request.method} {request.path[:200]} (see /api/v1/docs)"
    if status == 405:
        allowed = response.get("Allow", "")
        return f"{request.method} is not allowed on {request.path[:200]}" + (f"; use {allowed}" if allowed else "")
    if status >= 500:
        return "Something went wrong on our side; nothing was changed"
    return response.reason_phrase or "The request was refused"


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            body = {"code": CODES.get(response.status_code, "error"), "message": _message(request, response)}
            replaced = HttpResponse(json.dumps(body), status=response.status_code, content_type="application/json")
            for header in ("Allow", "WWW-Authenticate", "Retry-After"):
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response
