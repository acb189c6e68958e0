"""Every answer under /api/ is JSON, whatever produced it: an unknown route (Django's HTML 404), a wrong
method (405 text/plain), a CSRF or size refusal. Programs get `{"code", "message"}` for every status."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
