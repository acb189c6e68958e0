"""A multipart body the server cannot parse (a bad boundary), sent to the real server (daphne, as users run
it): every /api/ path answers a JSON error like any other bad body, and a page answers as Django does,
never a bare empty 400 from the layer underneath, never a 500."""

from __future__ import annotations

import http.client
import json

import pytest

from conftest import create_demo
from ledger.models import Event
from markets import tokens
from sessionsite.testing import Server

pytestmark = pytest.mark.django_db(transaction=True)

BAD_BOUNDARIES = [
    b"multipart/form-data; boundary=",
    b"multipart/form-data",
    b'multipart/form-data; boundary="unclosed',
    b"multipart/form-data; boundary=" + b"x" * 100,
]


@pytest.fixture
def server(transactional_db, tmp_path):
    srv = Server(tmp_path / "daphne.log").start()
    yield srv
    srv.stop()


def post(server: Server, path: str, content_type: bytes, headers: dict[str, str] | None = None):
    body = b"--x\r\nContent-Disposition: form-data; name=prices\r\n\r\n{}\r\n--x--\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("content_type", BAD_BOUNDARIES)
def test_a_bad_multipart_body_gets_a_json_error_on_every_api_path(server, users, content_type):
    create_demo(users)
    auth = {"Authorization": f"Bearer {tokens.create_token(users['org'], name='t')[1]}"}
    before = Event.objects.count()
    for path, status, code in (
        ("/api/v1/sessions/demo/settle", 400, "malformed_json"),
        ("/api/v1/sessions", 400, "malformed_json"),
        ("/api/v1/no/such/endpoint", 404, "not_found"),
    ):
        got, kind, body = post(server, path, content_type, auth)
        assert (got, kind) == (status, "application/json"), (path, got, kind, body)
        answer = json.loads(body)
        assert answer["code"] == code and answer["message"], (path, answer)
    got, kind, body = post(server, "/api/v1/sessions/demo/settle", content_type)  # no token: 401, in JSON
    assert (got, json.loads(body)["code"]) == (401, "unauthenticated")
    assert Event.objects.count() == before


@pytest.mark.parametrize("path", ["/accounts/login/", "/"])
def test_a_page_given_a_bad_multipart_body_answers_as_django_does(server, users, path):
    """Django reads the form (the CSRF check does, first) and refuses it with its own page: a 403 for the
    missing CSRF token or a 400; the sessions list sends a visitor to sign in first. Never a 500, never
    the bare empty 400 of the layer underneath."""
    got, kind, body = post(server, path, b"multipart/form-data; boundary=")
    assert got in (302, 400, 403) and kind.startswith("text/html"), (got, kind, body[:200])
    assert got == 302 or b"<" in body
