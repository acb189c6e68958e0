"""Errors every edge (form, JSON API, CLI, admin) turns into a clear message. Each has a stable `code`
and a `kind` (see markets.domain.DomainError); `http_status` is how the HTTP edges say the kind."""

from __future__ import annotations

from markets.domain import DomainError, InvariantViolation


class NotFound(DomainError):
    code = "not_found"
    kind = "not_found"


class Forbidden(DomainError):
    code = "forbidden"
    kind = "forbidden"


class Conflict(DomainError):
    """The request is well-formed but the market's state refuses it now (closed, expired, taken)."""

    code = "conflict"
    kind = "conflict"


class StorageUnavailable(DomainError):
    """The database refused the write (disk full, read-only file): nothing was changed; retry later."""

    code = "storage_unavailable"
    kind = "unavailable"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    kind = "unauthenticated"


HTTP_STATUS = {
    "invalid": 422,
    "conflict": 409,
    "forbidden": 403,
    "not_found": 404,
    "unauthenticated": 401,
    "unavailable": 503,
}


def http_status(exc: DomainError) -> int:
    """The HTTP status a refusal is answered with (the API, the pages)."""
    return HTTP_STATUS[exc.kind]


__all__ = [
    "HTTP_STATUS",
    "Conflict",
    "DomainError",
    "Forbidden",
    "InvariantViolation",
    "NotFound",
    "StorageUnavailable",
    "Unauthenticated",
    "http_status",
]
