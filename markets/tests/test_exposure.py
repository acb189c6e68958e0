"""Safe to expose on a workshop network: sockets checked like CSRF checks a POST, close codes a program can
tell apart, JSON errors for every API status, a per-session visibility, throttled sign-in, no password
reset that sends nothing. The sockets are tested against real daphne with Python's `websockets` client,
as non-browser programs connect."""

from __future__ import annotations

import asyncio
import json
import time
from io import StringIO

import pytest
import websockets
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import create_demo, make_user
from ledger.models import Event
from markets import services, tokens
from markets.tests.test_api import Api, assert_error
from sessionsite.testing import Server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(transactional_db, tmp_path):
    srv = Server(tmp_path / "daphne.log").start()
    yield srv
    srv.stop()


def cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def first_message(url: str, headers: dict[str, str] | None = None, send: str | None = None):
    """Connect, optionally send a frame, and return (the first message, or the close code)."""
    try:
        async with websockets.connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
            if send is not None:
                await ws.send(send)
            return json.loads(await asyncio.wait_for(ws.recv(), 10)), None
    except ConnectionClosed as exc:
        return None, exc.rcvd.code if exc.rcvd else None


async def close_code(url: str, headers: dict[str, str] | None = None) -> int:
    async with websockets.connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            return exc.rcvd.code


def test_the_floor_socket_demands_this_sites_origin_scheme_host_and_port(server, users, demo):
    ws = server.url.replace("http", "ws") + "/ws/sessions/demo/"
    signed_in = cookie(users["alice"])
    for origin in ("http://localhost:1234", "http://evil.example", f"https{server.url[4:]}", "null"):
        with pytest.raises(InvalidStatus) as info:
            asyncio.run(first_message(ws, {"Cookie": signed_in, "Origin": origin}))
        assert info.value.response.status_code == 403, origin

    async def floor() -> str:
        async with websockets.connect(ws, additional_headers={"Cookie": signed_in, "Origin": server.url}) as sock:
            return await asyncio.wait_for(sock.recv(), 10)

    assert 'id="holdings"' in asyncio.run(floor())
    assert "websocket /ws/sessions/demo/ refused: origin 'http://localhost:1234'" in server.log_path.read_text()


def test_a_token_stream_needs_no_origin_and_a_cookie_alone_is_not_enough_without_one(server, users, demo):
    raw = tokens.create_token(users["bob"])[1]
    url = server.url.replace("http", "ws") + "/ws/sessions/demo"
    first, code = asyncio.run(first_message(url, {"Authorization": f"Bearer {raw}"}))  # websockets sends no Origin
    assert code is None and first["type"] == "event" and first["event"]["type"] == "SessionCreated"
    first, code = asyncio.run(first_message(f"{url}?token={raw}"))
    assert first["type"] == "event"
    error, code = asyncio.run(first_message(url, {"Cookie": cookie(users["bob"])}))
    assert error["code"] == "unauthenticated"


def test_close_codes_tell_a_program_what_went_wrong(server, users, demo):
    raw = tokens.create_token(users["eve"])[1]
    create_demo(users, "private", open_it=False, visibility="participants")
    base = server.url.replace("http", "ws")
    auth = {"Authorization": f"Bearer {raw}"}
    assert asyncio.run(close_code(f"{base}/ws/sessions/demo", {"Authorization": "Bearer sc_wrong"})) == 4401
    assert asyncio.run(close_code(f"{base}/ws/sessions/nope", auth)) == 4404
    assert asyncio.run(close_code(f"{base}/ws/sessions/demo?after=x", auth)) == 4400
    assert asyncio.run(close_code(f"{base}/ws/sessions/private", auth)) == 4403
    error, _ = asyncio.run(first_message(f"{base}/ws/sessions/private", auth))
    assert error == {
        "type": "error",
        "code": "forbidden",
        "message": "session private is visible to its participants only",
    }


def test_malformed_paths_and_frames_are_refused_cleanly(server, users, demo):
    raw = tokens.create_token(users["alice"])[1]
    base = server.url.replace("http", "ws")
    assert asyncio.run(close_code(f"{base}/ws/sessions/a%20b/", {"Origin": server.url})) == 4404
    assert asyncio.run(close_code(f"{base}/ws/no/such/thing")) == 4404

    async def garbage() -> list[dict]:
        async with websockets.connect(
            f"{base}/ws/sessions/demo", additional_headers={"Authorization": f"Bearer {raw}"}
        ) as ws:
            for frame in ("not json{", b"\xff\xfe"):
                await ws.send(frame)
            replies = []
            while len(replies) < 2:
                item = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if item["type"] == "error":
                    replies.append(item)
            await ws.send("{}")  # still open
            while True:
                item = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if item["type"] == "error":
                    return [*replies, item]

    assert [r["code"] for r in asyncio.run(garbage())] == ["read_only", "read_only", "read_only"]
    log = server.log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log
    assert "websocket /ws/sessions/a b/ refused (4404)" in log
    assert "a frame from the client was ignored" in log


def test_every_error_under_the_api_is_json(client, users, demo):
    api = Api(client, {"alice": tokens.create_token(users["alice"])[1]})
    for path in ("/no-such-thing", "/sessions/demo%2Fx/rfqs", "/sessions/demo/nothing/here"):
        body = assert_error(api.get(path), 404, "not_found")
        assert "No such endpoint" in body["message"]
    wrong = api.get("/quotes/1/accept")
    body = assert_error(wrong, 405, "method_not_allowed")
    assert "GET is not allowed" in body["message"] and "POST" in wrong["Allow"]
    assert_error(client.delete("/api/v1/sessions", headers={"Authorization": "Bearer x"}), 405, "method_not_allowed")


def test_participants_only_sessions_are_seen_by_their_participants_only(client, users):
    create_demo(users, "open-room")
    create_demo(users, "private", visibility="participants")
    rfq = services.request_rfq(users["alice"], "private", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    auditor = make_user("auditor")
    auditor.user_permissions.add(Permission.objects.get(codename="view_any_session"))
    keys = {n: tokens.create_token(u)[1] for n, u in {**users, "auditor": auditor}.items()}
    api = Api(client, keys)
    before = Event.objects.count()
    for path in ("", "/allocations", "/rfqs", "/trades", "/events", "/prices", "/payouts"):
        assert_error(api.get(f"/sessions/private{path}", who="eve"), 403, "not_visible")
        assert api.get(f"/sessions/private{path}", who="alice").status_code == 200
        assert api.get(f"/sessions/private{path}", who="auditor").status_code == 200
    assert [s["id"] for s in api.get("/sessions", who="eve").json()] == ["open-room"]
    assert {s["id"] for s in api.get("/sessions", who="bob").json()} == {"open-room", "private"}
    assert_error(api.post(f"/quotes/{quote.id}/accept", who="eve"), 403, "not_a_participant")
    # The pages: the floor, the board's actions, the sessions list.
    eve = Client()
    eve.force_login(users["eve"])
    page = eve.get("/sessions/private/")
    assert page.status_code == 403 and "visible to its participants only" in page.content.decode()
    assert eve.post(f"/quotes/{quote.id}/accept", headers={"HX-Request": "true"}).status_code == 403
    assert eve.post("/sessions/private/rfq", {"give_leg": "AAPL"}, headers={"HX-Request": "true"}).status_code == 403
    listing = eve.get("/").content.decode()
    assert "open-room" in listing and "private" not in listing
    assert Event.objects.count() == before
    # Nobody joins it uninvited; its organiser may add them.
    create_demo(users, "club", open_it=False, visibility="participants")
    assert_error(api.post("/sessions/club/participants", {"role": "trader"}, who="eve"), 403, "not_visible")
    assert api.post("/sessions/club/participants", {"role": "trader", "username": "eve"}, who="org").status_code == 201


def test_sign_in_is_throttled_per_username_and_address(client, users, settings):
    settings.AXES_COOLOFF_TIME = 2 / 3600  # two seconds, for the test
    users["alice"].set_password("right")
    users["alice"].save()

    def sign_in(username: str, password: str, ip: str = "10.0.0.7"):
        return Client(REMOTE_ADDR=ip).post("/accounts/login/", {"username": username, "password": password})

    for _ in range(4):
        wrong = sign_in("alice", "wrong")
        assert wrong.status_code == 200 and "Wrong username or password" in wrong.content.decode()
    assert sign_in("alice", "wrong").status_code == 429  # the fifth locks alice out from this address
    locked = sign_in("alice", "right")
    assert (
        locked.status_code == 429 and "Too many wrong passwords for this account from here" in locked.content.decode()
    )
    users["bob"].set_password("right")
    users["bob"].save()
    assert sign_in("bob", "right").status_code == 302  # another account is not locked
    assert sign_in("alice", "right", ip="10.0.0.8").status_code == 302  # nor alice from another machine
    time.sleep(2.2)
    assert sign_in("alice", "right").status_code == 302  # the lockout ends
    call_command("axes_reset", stdout=StringIO())


def test_there_is_no_password_reset_that_sends_nothing(client):
    for path in ("/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/x/y/"):
        assert client.get(path).status_code == 404
    assert client.get("/accounts/login/").status_code == 200
