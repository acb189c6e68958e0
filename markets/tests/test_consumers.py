"""The floor's WebSocket against the full ASGI app: what browsers receive, from whichever process
wrote the change (a thread here, a real `manage.py` subprocess there), and after a reconnect."""

from __future__ import annotations

import asyncio
import html
import subprocess
import sys
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from markets import services
from markets.push.feed import feed
from sessionsite.asgi import application
from sessionsite.testing import child_env

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def connect(user, path: str = "/ws/sessions/demo/") -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(cookie_for)(user)))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_until(comm: WebsocketCommunicator, needle: str, timeout: float = 5.0) -> tuple[str, float]:
    """Receive messages until one contains `needle` (character references decoded, as a browser does);
    returns it and the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            message = html.unescape(await comm.receive_from(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
        if needle in message:
            return message, time.monotonic() - start
        seen.append(message[:200])
    raise AssertionError(f"{needle!r} not pushed within {timeout}s; got {len(seen)} other messages")


def in_thread(fn, *args, **kwargs):
    """Run a service call the way another request would: its own thread and connection."""
    result: dict = {}

    def run():
        from django.db import connection

        try:
            result["value"] = fn(*args, **kwargs)
        except Exception as exc:  # pragma: no cover - surfaced below
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def closed_with(comm: WebsocketCommunicator) -> int:
    """The handshake completes and the server closes with a code a client can read (not a bare 403)."""
    connected, _ = await comm.connect()
    assert connected
    while True:
        message = await comm.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return message["code"]


async def test_anonymous_socket_is_refused(demo):
    assert await closed_with(await connect(None)) == 4401


async def test_a_cookie_whose_password_changed_since_is_refused(users, demo):
    """The socket's user is read by the consumer's own trip (sessionsite.wsauth) with Django's session
    check: a password changed since the cookie was issued signs every socket out, as it does pages."""
    comm = await connect(users["alice"])  # the cookie is issued now
    alice = users["alice"]
    alice.set_password("a new one, chosen after the cookie")
    await sync_to_async(alice.save)()
    assert await closed_with(comm) == 4401


async def test_unknown_session_is_refused(users, demo):
    assert await closed_with(await connect(users["alice"], "/ws/sessions/nope/")) == 4404


async def test_connect_sends_the_whole_floor_as_oob_fragments(users, demo):
    comm = await connect(users["alice"])
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_from(timeout=5)
    for panel in ("status", "legs", "holdings", "pool", "blotter", "events", "board"):
        assert f'id="{panel}"' in first
    assert first.count('hx-swap-oob="true"') >= 7
    assert "25.000000" in first  # alice's pro-rata AAPL
    await comm.disconnect()


async def test_two_sockets_connecting_together_read_their_arrival_at_the_same_time(users, demo, monkeypatch):
    """A connect's reads run on threads of their own, not in the queue of Channels' one database thread:
    two sockets connecting together are inside their reads at once. (On PostgreSQL each read is a round
    trip; 500 sockets reconnecting after a restart waited for them one after another.)"""
    from markets.push.consumers import FloorConsumer

    both = threading.Barrier(2, timeout=5)
    arrival = FloorConsumer._arrival

    def together(self, shown):
        both.wait()  # passes only once the other socket's reads have begun too
        return arrival(self, shown)

    monkeypatch.setattr(FloorConsumer, "_arrival", together)
    comms = [await connect(users["alice"]), await connect(users["bob"])]
    results = await asyncio.gather(*(comm.connect(timeout=10) for comm in comms))
    assert [connected for connected, _ in results] == [True, True]
    for comm in comms:
        assert 'id="holdings"' in await comm.receive_from(timeout=5)
        await comm.disconnect()


async def test_trade_by_another_writer_reaches_both_sides_with_new_holdings(users, demo):
    taker = await connect(users["alice"])
    maker = await connect(users["mm"])
    assert (await taker.connect())[0] and (await maker.connect())[0]
    await taker.receive_from(timeout=5)
    await maker.receive_from(timeout=5)

    rfq = await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
    message, _ = await receive_until(maker, f'<div class="rfq" id="rfq-{rfq.id}">')
    assert f'data-testid="quote-form-{rfq.id}"' in message  # the maker is offered a quote form
    quote = await sync_to_async(in_thread)(services.provide_quote, users["mm"], rfq.id, "0.62")
    message, _ = await receive_until(taker, f'data-testid="accept-{quote.id}"')  # only the taker gets Accept
    await sync_to_async(in_thread)(services.accept_quote, users["alice"], quote.id)
    for comm in (taker, maker):
        message, elapsed = await receive_until(comm, "TradeExecuted")
        assert "21.200000" in message  # alice NVDA 15 + 6.2 ...
        assert "8.800000" in message  # ... and mm NVDA 15 - 6.2
        assert elapsed < 1.0
    await taker.disconnect()
    await maker.disconnect()


async def test_watcher_does_not_get_buttons_that_are_not_theirs(users, demo):
    rfq = await sync_to_async(services.request_rfq)(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = await sync_to_async(services.provide_quote)(users["mm"], rfq.id, "0.62")
    watcher = await connect(users["bob"])
    assert (await watcher.connect())[0]
    first = await watcher.receive_from(timeout=5)
    assert f'id="quote-{quote.id}"' in first
    assert f'data-testid="accept-{quote.id}"' not in first
    assert f'data-testid="quote-form-{rfq.id}"' not in first
    await watcher.disconnect()


async def test_price_tick_written_by_another_process_is_pushed(users, demo):
    comm = await connect(users["bob"])
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)
    code = (
        "from oracle.models import Tick; from ledger import clock; "
        "[Tick.objects.create(session_id='demo', symbol=s, at=clock.now(), price=p, source='test') "
        "for s, p in (('AAPL', 201234500), ('NVDA', 1), ('META', 1), ('ORCL', 1))]"
    )
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        env=child_env(),
        check=True,
        timeout=60,
    )
    message, elapsed = await receive_until(comm, "201.23")
    assert 'id="legs"' in message and 'data-testid="price-AAPL"' in message
    assert elapsed < 1.5
    await comm.disconnect()


async def test_settlement_by_manage_py_settle_is_pushed(users, demo):
    comm = await connect(users["alice"])
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)
    cmd = [sys.executable, "manage.py", "settle", "demo", "--price", "AAPL=1", "--price", "NVDA=2", "--price", "META=3"]
    cmd += ["--price", "ORCL=4"]
    result = await asyncio.to_thread(subprocess.run, cmd, env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    message, _ = await receive_until(comm, "SessionSettled")
    assert "Σ payouts" in message and "✓ exact" in message
    assert "940.00" in message  # q.S = 100 + 120 + 240 + 480
    await comm.disconnect()


async def test_reconnecting_browser_is_brought_up_to_date(users, demo):
    comm = await connect(users["alice"])
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)
    await comm.disconnect()
    # While alice is away: an RFQ, a quote and a trade.
    rfq = await sync_to_async(in_thread)(services.request_rfq, users["bob"], "demo", "ORCL", "META", "12")
    quote = await sync_to_async(in_thread)(services.provide_quote, users["mm"], rfq.id, "0.5")
    await sync_to_async(in_thread)(services.accept_quote, users["bob"], quote.id)
    again = await connect(users["alice"])
    assert (await again.connect())[0]
    first = await again.receive_from(timeout=5)
    assert "TradeExecuted" in first and "6.000000" in first  # the trade it missed, in the blotter
    await again.disconnect()


async def test_many_browsers_cost_one_read_per_event(users, demo):
    """Ten sockets on one session: the feed polls the log once per interval, whatever the count."""
    comms = []
    for _ in range(10):
        comm = await connect(users["bob"])
        assert (await comm.connect())[0]
        await comm.receive_from(timeout=5)
        comms.append(comm)
    polls_before = feed.polls
    started = time.monotonic()
    await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "1")
    for comm in comms:
        await receive_until(comm, "RFQRequested")
    elapsed = time.monotonic() - started
    interval = float(settings.FEED_POLL_SECONDS)
    # One follower per process: its polls depend on time, not on the number of sockets.
    assert feed.polls - polls_before <= elapsed / interval + 3
    for comm in comms:
        await comm.disconnect()
