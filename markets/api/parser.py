"""Reading requests: JSON bodies with exact numbers, and the bearer token's user."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser
from ninja.security import HttpBearer

from markets import tokens


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
