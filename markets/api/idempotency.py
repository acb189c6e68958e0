"""`Idempotency-Key` on every POST: a retry with the same key (same user, same body) gets the first
answer and executes nothing twice, even when the two requests race; another body with the key is a 422."""

from __future__ import annotations

import functools
import hashlib
import re
import time

from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from ninja import Router
from ninja.decorators import decorate_view

from ledger import clock
from markets.api.errors import error_response
from markets.api.parser import bearer
from markets.models import IdempotencyRecord


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    return error_response(status, code, message)


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


def post(router: Router, path: str, **kwargs):
    """router.post with the shared error responses, the Idempotency-Key header and its handling."""

    def register(fn):
        decorated = decorate_view(idempotent)(fn)
        return router.post(path, openapi_extra=IDEMPOTENCY_OPENAPI, **kwargs)(decorated)

    return register
