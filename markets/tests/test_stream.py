"""The JSON stream for programs at /ws/sessions/<id>: token auth, resume by seq, live trades."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from ledger.models import Event
from markets import services, tokens
from markets.tests.test_consumers import in_thread
from sessionsite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def stream(path: str, token: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def next_of(comm: WebsocketCommunicator, kind: str, timeout: float = 5.0) -> dict:
    while True:
        item = await comm.receive_json_from(timeout=timeout)
        if item["type"] == kind:
            return item


async def test_stream_needs_a_valid_token(demo):
    for token in (None, "sc_not-a-real-token"):
        comm = await stream("/ws/sessions/demo", token)
        assert (await comm.connect())[0]
        error = await comm.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["code"] == "unauthenticated"
        assert (await comm.receive_output(timeout=5))["code"] == 4401


async def test_backlog_then_live_trade_made_through_the_api(users, demo):
    _, raw = await sync_to_async(tokens.create_token)(users["alice"])
    comm = await stream("/ws/sessions/demo", raw)
    assert (await comm.connect())[0]
    first = await comm.receive_json_from(timeout=5)
    assert (
        first["type"] == "event"
        and first["event"]["type"] == "SessionCreated"
        and first["event"]["payload"]["q"][0] == 100_000_000
    )
    seqs = [first["event"]["seq"]]
    while True:
        item = await comm.receive_json_from(timeout=5)
        if item["type"] == "holdings":
            break
        seqs.append(item["event"]["seq"])
    assert seqs == sorted(seqs) and len(seqs) == 8  # created, 5 joins, allocation, opened
    assert item["holdings"]["alice"]["AAPL"] == "25.000000"

    rfq = await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = await sync_to_async(in_thread)(services.provide_quote, users["mm"], rfq.id, "0.62")

    def accept_over_http():
        client = Client()
        response = client.post(
            f"/api/v1/quotes/{quote.id}/accept", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
        )
        assert response.status_code == 201, response.content
        return response.json()

    await sync_to_async(in_thread)(accept_over_http)
    trade = None
    while trade is None:
        item = await next_of(comm, "event")
        if item["event"]["type"] == "TradeExecuted":
            trade = item
    assert trade["event"]["payload"]["give_qty"] == 10_000_000 and trade["event"]["payload"]["get_qty"] == 6_200_000
    holdings = await next_of(comm, "holdings")
    assert holdings["holdings"]["alice"]["NVDA"] == "21.200000"
    assert holdings["seq"] == trade["event"]["seq"]
    await comm.disconnect()


async def test_resume_after_seq_sends_only_what_was_missed(users, demo):
    _, raw = await sync_to_async(tokens.create_token)(users["bob"])
    last_seen = await sync_to_async(lambda: Event.objects.filter(stream="session-demo").order_by("-seq")[2].seq)()
    comm = await stream(f"/ws/sessions/demo?after={last_seen}", raw)
    assert (await comm.connect())[0]
    got = []
    while True:
        item = await comm.receive_json_from(timeout=5)
        if item["type"] == "holdings":
            break
        got.append(item["event"]["seq"])
    assert got == [last_seen + 1, last_seen + 2]
    await comm.send_json_to({"do": "anything"})
    reply = await comm.receive_json_from(timeout=5)
    assert reply["code"] == "read_only"
    await comm.disconnect()


async def test_bad_after_is_refused(users, demo):
    _, raw = await sync_to_async(tokens.create_token)(users["bob"])
    for after in ("abc", "-1", "1.5", "\u0661", ""):  # an empty one too: not a replay of everything
        comm = await stream(f"/ws/sessions/demo?after={after}", raw)
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["code"] == "bad_request"
        assert (await comm.receive_output(timeout=5))["code"] == 4400


async def test_an_event_on_the_stream_is_exactly_what_the_api_pages_give(users, demo):
    """One serialiser: the stream's event and the API's events page agree field for field."""
    _, raw = await sync_to_async(tokens.create_token)(users["alice"])
    comm = await stream("/ws/sessions/demo", raw)
    assert (await comm.connect())[0]
    streamed = []
    while True:
        item = await comm.receive_json_from(timeout=5)
        if item["type"] == "holdings":
            break
        streamed.append(item["event"])

    def page():
        return Client().get("/api/v1/sessions/demo/events", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["events"]

    assert streamed == await sync_to_async(in_thread)(page)
    await comm.disconnect()


async def test_a_stream_is_closed_with_4401_at_the_recheck_after_its_token_was_revoked(users, demo):
    """The live version (another process revokes, real daphne) is in test_sockets_live.py."""
    from markets.models import ApiToken
    from markets.push import credentials

    token, raw = await sync_to_async(tokens.create_token)(users["alice"])
    comm = await stream("/ws/sessions/demo", raw)
    assert (await comm.connect())[0]
    await next_of(comm, "holdings")
    assert await credentials.recheck() == 0  # standing: stays open
    await sync_to_async(in_thread)(lambda: ApiToken.objects.filter(pk=token.pk).update(is_active=False))
    assert await credentials.recheck() == 1
    error = await comm.receive_json_from(timeout=5)
    assert error == {"type": "error", "code": "unauthenticated", "message": "the API token was revoked"}
    assert (await comm.receive_output(timeout=5))["code"] == 4401


async def test_ignored_frames_are_logged_once_then_at_most_a_line_a_minute_with_a_count(
    users, demo, caplog, monkeypatch
):
    """Every frame is still answered `read_only`; the log gets the first, then one line per interval."""
    import asyncio
    import logging

    from markets.push import consumers

    monkeypatch.setattr(consumers, "IGNORED_LOG_SECONDS", 0.3)  # a minute in production
    _, raw = await sync_to_async(tokens.create_token)(users["bob"])
    comm = await stream("/ws/sessions/demo", raw)
    assert (await comm.connect())[0]
    await next_of(comm, "holdings")

    async def chatter(n: int) -> None:
        for _ in range(n):
            await comm.send_json_to({"do": "anything"})
            assert (await next_of(comm, "error"))["code"] == "read_only"

    with caplog.at_level(logging.WARNING, logger="markets.push.consumers"):
        await chatter(6)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "a frame from the client was ignored" in lines[0]
        await asyncio.sleep(0.4)
        await chatter(1)
        assert (
            caplog.records[-1]
            .getMessage()
            .endswith("6 more frames from the client were ignored since the last line (the stream is read-only)")
        )
        await chatter(2)
        await comm.disconnect()
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith("2 more frames from the client were ignored before it closed (the stream is read-only)")
    )
    assert len(caplog.records) == 3
