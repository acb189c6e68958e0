"""Reading requests: JSON bodies with exact numbers, and the bearer token's user."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser
from ninja.security import HttpBearer

from markets import tokens


class DuplicateKey(ValueError):
    """An object names one key twice: `json.loads` would keep the last silently ({"AAPL":"1","AAPL":"500"}
    would settle at 500), so the body is refused instead, at any depth."""


class ExactJSONParser(Parser):
    """JSON bodies with numbers read as Decimal (exact, never float), no NaN/Infinity and no key twice in
    one object. A refusal leaves its code and message on the request for `errors._http_error`.

    (Ninja calls this only for a non-empty body; an empty one leaves optional bodies unset.)
    """

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            return json.loads(
                request.body, parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
            )
        except (ValueError, RecursionError) as exc:
            code = "duplicate_key" if isinstance(exc, DuplicateKey) else "malformed_json"
            request._api_parse_error = (code, _parse_error_text(exc))  # type: ignore[attr-defined]
            raise


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"The request body names {key[:40]!r} twice in one object: give each key once")
        result[key] = value
    return result


def _parse_error_text(exc: Exception) -> str:
    if isinstance(exc, DuplicateKey):
        return str(exc)
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
