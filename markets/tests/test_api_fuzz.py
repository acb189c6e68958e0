"""Property test of the whole JSON API with schemathesis, from its own OpenAPI schema.

Every operation is called with generated requests (valid and invalid) through Django's WSGI handler, as
organiser, trader or maker, against a real session (ids are sometimes swapped for existing ones so the
domain rules run, not just the 404s). Every response must be a non-5xx that conforms to the schema
(status code, content type, body), and a rejected request must leave the ledger unchanged.
"""

from __future__ import annotations

import itertools
import zlib

import pytest

schemathesis = pytest.importorskip("schemathesis")

from django.core.signals import request_finished, request_started  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import create_demo  # noqa: E402
from ledger.models import Event  # noqa: E402
from markets import services, tokens  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = ("org", "alice", "mm")
KEY_SUFFIX = itertools.count()


@pytest.fixture
def world(users):
    """The demo session open with one RFQ (id 1) and one live quote (id 1); a token per user."""
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.provide_quote(users["mm"], rfq.id, "0.62", 3600)
    return {"keys": {name: tokens.create_token(users[name])[1] for name in ROLES}, "rfq": rfq.id}


@pytest.fixture
def api_schema(world):
    # As django.test.Client does: a request must not close the test's connection (it holds the transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, world):
    # Who calls, and whether ids are swapped for real ones, follow from the generated case itself
    # (deterministic; schemathesis does not combine schema examples with extra @given strategies).
    spin = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    who = ROLES[spin % len(ROLES)]
    if spin & 8 and case.path_parameters:
        known = {"session_id": "demo", "rfq_id": world["rfq"], "quote_id": 1}
        case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and key.isascii() and key.isprintable() and len(key) < 200:
        # Generated keys repeat across cases; keep them unique so the commands themselves get exercised
        # (reusing a key with another body is covered in test_api_idempotency).
        case.headers["Idempotency-Key"] = f"{key}-{next(KEY_SUFFIX)}"
    before = Event.objects.count()
    response = case.call(headers={"Authorization": f"Bearer {world['keys'][who]}"})
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        assert Event.objects.count() == before, f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code != 405:  # ninja's own plain-text "Method not allowed"
            assert set(response.json()) == {"code", "message"}, response.text
