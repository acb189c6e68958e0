"""Open sockets against real daphne, as programs and browsers hold them: a token revoked, an account
deactivated or a sign-in ended in another process closes them with 4401 within seconds; a message over
the server's limit is answered and closed with 1009; a stream's ignored frames are logged once, not each."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed

from markets import tokens
from markets.models import ApiToken
from markets.push.credentials import ACCOUNT_DEACTIVATED, RECHECK_SECONDS, SIGNED_OUT, TOKEN_REVOKED
from sessionsite.testing import Server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A lapsed credential closes its sockets at the next recheck; the slack is for a loaded machine.
WITHIN = RECHECK_SECONDS + 3.0


@pytest.fixture
def server(transactional_db, tmp_path):
    srv = Server(tmp_path / "daphne.log").start()
    yield srv
    srv.stop()


def signed_in(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Held:
    """A socket held open in a thread of its own, reading until it is closed: what it was sent, the
    close code, and when the close came."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.messages: list[str] = []
        self.code: int | None = None
        self.closed_at: float | None = None
        self.opened = asyncio.Event()

    async def run(self) -> None:
        try:
            async with websockets.connect(self.url, additional_headers=self.headers, open_timeout=10) as ws:
                while True:
                    self.messages.append(await ws.recv())
                    self.opened.set()
        except ConnectionClosed as exc:
            self.code = exc.rcvd.code if exc.rcvd else None
        finally:
            self.closed_at = time.monotonic()
            self.opened.set()

    def errors(self) -> list[dict]:
        return [m for m in map(_json, self.messages) if m and m.get("type") == "error"]


def _json(text: str) -> dict | None:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def hold_then(sockets: list[Held], change, still_open: list[Held] = ()) -> float:
    """Open every socket, wait for each one's first message, make the change (in this process, which is
    not daphne's), and wait for `sockets` to close; the seconds it took the last of them. The sockets of
    `still_open` must stay open meanwhile."""
    tasks = [asyncio.create_task(s.run()) for s in (*sockets, *still_open)]
    for s in (*sockets, *still_open):
        await asyncio.wait_for(s.opened.wait(), 15)
        assert s.closed_at is None, (s.url, s.code, s.messages[-1:])
    changed = time.monotonic()
    await asyncio.to_thread(change)
    await asyncio.wait_for(asyncio.gather(*tasks[: len(sockets)]), WITHIN + 5)
    for s in still_open:
        assert s.closed_at is None, f"{s.url} was closed too ({s.code})"
    for task in tasks[len(sockets) :]:
        task.cancel()
    return max(s.closed_at for s in sockets) - changed


def test_a_revoked_token_closes_its_streams_with_4401_within_seconds(server, users, demo):
    """Unticking the token (the admin's "revoke") closes the streams it opened, not those of another
    token of the same user; deleting a token does the same."""
    url = server.url.replace("http", "ws") + "/ws/sessions/demo"
    revoked, raw = tokens.create_token(users["bob"], "script")
    deleted, raw_deleted = tokens.create_token(users["bob"], "laptop")
    _, raw_kept = tokens.create_token(users["bob"], "other")
    by_header = Held(url, {"Authorization": f"Bearer {raw}"})
    by_query = Held(f"{url}?token={raw}", {})
    by_deleted = Held(url, {"Authorization": f"Bearer {raw_deleted}"})
    kept = Held(url, {"Authorization": f"Bearer {raw_kept}"})

    def revoke() -> None:
        ApiToken.objects.filter(pk=revoked.pk).update(is_active=False)
        ApiToken.objects.filter(pk=deleted.pk).delete()

    took = asyncio.run(hold_then([by_header, by_query, by_deleted], revoke, still_open=[kept]))
    assert took < WITHIN
    for s in (by_header, by_query, by_deleted):
        assert s.code == 4401
        assert s.errors()[-1] == {"type": "error", "code": "unauthenticated", "message": TOKEN_REVOKED}
        assert _json(s.messages[-1])["code"] == "unauthenticated"  # said just before the close


def test_a_deactivated_account_loses_every_socket_token_or_cookie_json_or_floor(server, users, demo):
    base = server.url.replace("http", "ws")
    alice = users["alice"]
    _, raw = tokens.create_token(alice)
    _, cookie = signed_in(alice)
    browser = {"Cookie": cookie, "Origin": server.url}
    sockets = [
        Held(f"{base}/ws/sessions/demo", {"Authorization": f"Bearer {raw}"}),
        Held(f"{base}/ws/sessions/demo", browser),
        Held(f"{base}/ws/sessions/demo/", browser),
    ]
    others = [Held(f"{base}/ws/sessions/demo/", {"Cookie": signed_in(users["bob"])[1], "Origin": server.url})]

    def deactivate() -> None:
        alice.is_active = False
        alice.save(update_fields=["is_active"])

    took = asyncio.run(hold_then(sockets, deactivate, still_open=others))
    assert took < WITHIN
    assert [s.code for s in sockets] == [4401, 4401, 4401]
    for stream in sockets[:2]:
        assert stream.errors()[-1] == {"type": "error", "code": "unauthenticated", "message": ACCOUNT_DEACTIVATED}


def test_signing_out_closes_the_sockets_of_that_sign_in(server, users, demo):
    client, cookie = signed_in(users["alice"])
    base = server.url.replace("http", "ws")
    browser = {"Cookie": cookie, "Origin": server.url}
    floor, stream = Held(f"{base}/ws/sessions/demo/", browser), Held(f"{base}/ws/sessions/demo", browser)
    elsewhere = Held(f"{base}/ws/sessions/demo/", {"Cookie": signed_in(users["alice"])[1], "Origin": server.url})
    took = asyncio.run(hold_then([floor, stream], client.logout, still_open=[elsewhere]))
    assert took < WITHIN
    assert (floor.code, stream.code) == (4401, 4401)
    assert stream.errors()[-1]["message"] == SIGNED_OUT


def test_a_new_password_closes_the_sockets_its_sign_ins_hold_but_not_a_token_stream(server, users, demo):
    """Django signs a browser out of its pages when the account's password changes (its session hash):
    its sockets follow within seconds, as when a rejoin link is revoked (a guest's new unusable password)."""
    _, cookie = signed_in(users["alice"])
    _, raw = tokens.create_token(users["alice"])
    base = server.url.replace("http", "ws")
    floor = Held(f"{base}/ws/sessions/demo/", {"Cookie": cookie, "Origin": server.url})
    program = Held(f"{base}/ws/sessions/demo", {"Authorization": f"Bearer {raw}"})

    def new_password() -> None:
        users["alice"].set_password("another one")
        users["alice"].save(update_fields=["password"])

    took = asyncio.run(hold_then([floor], new_password, still_open=[program]))
    assert took < WITHIN
    assert floor.code == 4401


def test_an_empty_after_is_refused_with_4400_not_a_replay_of_everything(server, users, demo):
    _, raw = tokens.create_token(users["bob"])
    s = Held(server.url.replace("http", "ws") + "/ws/sessions/demo?after=", {"Authorization": f"Bearer {raw}"})
    asyncio.run(asyncio.wait_for(s.run(), 15))
    assert s.code == 4400
    assert [_json(m)["code"] for m in s.messages] == ["bad_request"]


def test_a_message_over_the_limit_is_answered_then_closed_with_1009(server, users, demo):
    """4 MB to a stream (daphne's limit is 1 MiB): the error message, then a close with 1009 (message too
    big), not a dropped connection."""
    _, raw = tokens.create_token(users["bob"])
    url = server.url.replace("http", "ws") + "/ws/sessions/demo"

    async def send_big() -> tuple[list[dict], int | None]:
        got: list[dict] = []
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw}"}) as ws:
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "holdings":
                pass
            try:
                await ws.send("x" * (4 * 1024 * 1024))
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            except ConnectionClosed as exc:
                return got, exc.rcvd.code if exc.rcvd else None

    got, code = asyncio.run(send_big())
    assert code == 1009
    assert got[-1]["type"] == "error" and got[-1]["code"] == "message_too_big"
    assert "1048576 bytes" in got[-1]["message"]
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert "websocket /ws/sessions/demo: a message of 4194304 bytes or more refused (1009; at most 1048576)" in log


def test_a_stream_s_ignored_frames_are_logged_once_then_counted(server, users, demo):
    _, raw = tokens.create_token(users["bob"])
    url = server.url.replace("http", "ws") + "/ws/sessions/demo"

    async def chatter() -> int:
        answers = 0
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw}"}) as ws:
            for n in range(30):
                await ws.send(f'{{"n": {n}}}')
            while answers < 30:
                if json.loads(await asyncio.wait_for(ws.recv(), 10)).get("code") == "read_only":
                    answers += 1
        return answers

    assert asyncio.run(chatter()) == 30  # each frame is still answered
    deadline = time.monotonic() + 10
    while "29 more frames" not in (log := server.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.count("a frame from the client was ignored") == 1
    assert "29 more frames from the client were ignored before it closed" in log
