"""Errors every edge (form, JSON API, CLI, admin) turns into a clear message. Each has a stable
`code` and an HTTP-like `status`; all derive from the domain's DomainError."""

from __future__ import annotations

from markets.domain import DomainError, InvariantViolation


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    """The request is well-formed but the market's state refuses it now (closed, expired, taken)."""

    code = "conflict"
    status = 409


class StorageUnavailable(DomainError):
    """The database refused the write (disk full, read-only file): nothing was changed; retry later."""

    code = "storage_unavailable"
    status = 503


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401


__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "InvariantViolation",
    "NotFound",
    "StorageUnavailable",
    "Unauthenticated",
]
