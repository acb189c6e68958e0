"""The organiser's monitor and the pause of trading, as an organiser and the participants notice them.

Presence through real WebSocket connects and disconnects (a process that died leaves nothing connected);
the monitor's numbers are the floor's and the API's; a pause refuses RFQs, quotes and accepts on every
edge (services, API, pages) and writes nothing, cancels and withdrawals still work, and replay rebuilds
the pause exactly; who may open the monitor and who may pause; and, last, the organiser's monitor in a
real Chromium keeping up with a participant who connects and a trade, without reload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import shutil
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import create_demo, engine, make_user
from ledger import clock
from ledger.models import Event
from markets import audit, projections, selectors, services, tokens
from markets.errors import DomainError
from markets.models import Presence, Quote, Session, Trade
from markets.push import presence
from markets.selectors.monitor import ago, monitor_context
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, server, signed_in_page  # noqa: F401 (fixtures)
from markets.tests.test_consumers import closed_with, connect, in_thread
from oracle.models import Tick

HX = {"HTTP_HX_REQUEST": "true"}
PRICES = {"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client(user) -> Client:
    """A client of the JSON API with a bearer token of `user`'s."""
    return Client(headers={"Authorization": f"Bearer {tokens.create_token(user, 'tests')[1]}"})


def written(session_id: str = "demo") -> tuple[int, dict]:
    return Event.objects.count(), projections.snapshot(session_id)


def add_ticks(prices: dict[str, int] = PRICES, session_id: str = "demo") -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=s, at=clock.now(), price=p, source="test") for s, p in prices.items()
    )


def rows(session_id: str = "demo") -> dict:
    return {r.username: r for r in monitor_context(session_id)["rows"]}


def refused(fn, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        fn(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------- presence, through real sockets


async def counted(user, sockets: int) -> Presence:
    """The user's presence row once it counts `sockets`: a connect is counted just after its floor is
    sent, by the presence thread (a disconnect, before the socket's handler returns)."""
    for _ in range(100):
        row = await sync_to_async(Presence.objects.filter(session_id="demo", user=user).first)()
        if row is not None and row.sockets == sockets:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user.username} never counted {sockets} socket(s): {row and row.sockets}")


@pytest.mark.django_db(transaction=True)
class TestPresence:
    async def test_sockets_are_counted_per_user_as_they_connect_and_disconnect(self, users, demo):
        first, second = await connect(users["alice"]), await connect(users["alice"])
        assert (await first.connect())[0] and (await second.connect())[0]
        await first.receive_from(timeout=5)
        await second.receive_from(timeout=5)
        await counted(users["alice"], 2)
        seen = await sync_to_async(rows)()
        assert seen["alice"].connected and seen["alice"].sockets == 2 and seen["alice"].seen == "now"
        assert not seen["bob"].connected and seen["bob"].seen == "never"

        await first.disconnect()
        assert (await sync_to_async(rows)())["alice"].connected
        await second.disconnect()
        row = await sync_to_async(Presence.objects.get)(session_id="demo", user=users["alice"])
        assert row.sockets == 0
        alice = (await sync_to_async(rows)())["alice"]
        assert not alice.connected and alice.seen.endswith("s ago") and alice.last_seen == row.last_seen
        assert presence.held == {}

    async def test_a_refused_socket_is_not_present(self, users, demo):
        assert await closed_with(await connect(None)) == 4401
        private = await sync_to_async(create_demo)(users, "private", visibility="participants")
        assert await closed_with(await connect(users["eve"], f"/ws/sessions/{private.id}/")) == 4403
        assert await sync_to_async(Presence.objects.count)() == 0

    async def test_a_presence_its_process_stopped_refreshing_is_not_connected(self, users, demo):
        """A daphne killed with sockets open never says they closed: its rows stop being refreshed."""
        await sync_to_async(presence.connected)("demo", users["mm"].pk)
        await sync_to_async(presence.connected)("demo", users["mm"].pk)
        assert (await sync_to_async(rows)())["mm"].connected
        gone = clock.now() - dt.timedelta(seconds=Presence.STALE_SECONDS + 1)
        await sync_to_async(Presence.objects.filter(user=users["mm"]).update)(last_seen=gone)
        mm = (await sync_to_async(rows)())["mm"]
        assert not mm.connected and mm.seen == "1 min ago"
        # mm comes back through a live process: counted from 1 again, not from the dead process's 2.
        comm = await connect(users["mm"])
        assert (await comm.connect())[0]
        await comm.receive_from(timeout=5)
        await counted(users["mm"], 1)
        await comm.disconnect()
        assert (await sync_to_async(Presence.objects.get)(user=users["mm"])).sockets == 0

    async def test_the_heartbeat_keeps_connected_sockets_fresh(self, users, demo, monkeypatch):
        monkeypatch.setattr(presence, "HEARTBEAT_SECONDS", 0.05)
        comm = await connect(users["bob"])
        assert (await comm.connect())[0]
        await comm.receive_from(timeout=5)
        await counted(users["bob"], 1)
        old = clock.now() - dt.timedelta(seconds=Presence.STALE_SECONDS + 5)
        await sync_to_async(Presence.objects.filter(user=users["bob"]).update)(last_seen=old)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if (await sync_to_async(Presence.objects.get)(user=users["bob"])).last_seen > old:
                break
        assert (await sync_to_async(rows)())["bob"].connected
        await comm.disconnect()

    async def test_the_monitor_socket_is_told_of_connects_and_changes(self, users, demo):
        monitor = await connect(users["org"], "/ws/sessions/demo/?monitor=1")
        assert (await monitor.connect())[0]
        assert await monitor.receive_from(timeout=5) == "presence"  # its own socket: the organiser is here
        alice = await connect(users["alice"])
        assert (await alice.connect())[0]
        await alice.receive_from(timeout=5)
        assert await monitor.receive_from(timeout=5) == "presence"
        await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "1")
        assert await monitor.receive_from(timeout=5) == "refresh"  # no fragments: the page reads its partial
        await alice.disconnect()
        assert await monitor.receive_from(timeout=5) == "presence"
        assert (await sync_to_async(rows)())["org"].connected
        await monitor.disconnect()

    async def test_only_the_organiser_and_staff_get_a_monitor_socket(self, users, demo):
        assert await closed_with(await connect(users["alice"], "/ws/sessions/demo/?monitor=1")) == 4403
        staff = await sync_to_async(make_user)("ops")
        staff.is_staff = True
        await sync_to_async(staff.save)()
        comm = await connect(staff, "/ws/sessions/demo/?monitor=1")
        assert (await comm.connect())[0]
        assert await comm.receive_from(timeout=5) == "presence"
        await comm.disconnect()


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["open", "close", "beat", "wait"]), max_size=25))
def test_counts_follow_the_sockets_whatever_the_order(users, demo, steps):
    """Sockets opened and closed in any order, with the heartbeat between long waits: the row counts
    exactly the sockets open, and the monitor shows connected exactly while one is."""
    Presence.objects.all().delete()
    clock.set_time(dt.datetime(2031, 1, 1, 12, 0, tzinfo=dt.UTC))
    user = users["alice"].pk
    open_now = 0
    for step in steps:
        if step == "open":
            presence.connected("demo", user)
            open_now += 1
        elif step == "close" and open_now:
            presence.disconnected("demo", user)
            open_now -= 1
        elif step == "beat" and open_now:
            presence.refresh([("demo", user)])
        elif step == "wait":
            clock.advance(Presence.HEARTBEAT_SECONDS)
            if open_now:
                presence.refresh([("demo", user)])  # the living process's heartbeat
        row = Presence.objects.filter(user_id=user).first()
        assert (row.sockets if row else 0) == open_now
        assert rows()["alice"].connected == (open_now > 0)


def test_last_seen_reads_in_a_few_words():
    now = dt.datetime(2031, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert [ago(now - dt.timedelta(seconds=s), now) for s in (0, 59, 60, 3599, 3600, 90000)] == [
        "0 s ago", "59 s ago", "1 min ago", "59 min ago", "1 h ago", "1 d ago"
    ]  # fmt: skip
    assert ago(None, now) == "never"


# ---------------------------------------------------------------- the monitor's numbers


@pytest.fixture
def traded(users, demo):
    """Ticks, one trade (alice 10 AAPL -> 6.2 NVDA with mm), an open RFQ of bob's with a live quote of mm2's."""
    add_ticks()
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.62").id)
    other = services.request_rfq(users["bob"], "demo", "ORCL", "META", "3")
    services.provide_quote(users["mm2"], other.id, "0.3", 600)
    return demo


@pytest.mark.django_db
def test_the_monitor_shows_the_floors_numbers(users, traded):
    floor = {h.username: h for h in selectors.floor_context("demo")["holdings"]}
    context = monitor_context("demo")
    shown = {r.username: r for r in context["rows"]}
    assert set(shown) == {"org", "alice", "bob", "mm", "mm2"}
    for name, holding in floor.items():
        assert (shown[name].value, shown[name].pnl) == (holding.value, holding.pnl)
    # alice: 5 AAPL + 21.2 NVDA + 20 META + 30 ORCL at the ticks; P&L: -10 x 190.1 + 6.2 x 480.2.
    assert shown["alice"].pnl == Decimal("-1901") + Decimal("2977.24")
    assert shown["org"].value is None  # the organiser holds nothing
    assert [c.name for c in context["pool"].checks] == [c.name for c in selectors.floor_context("demo")["pool"].checks]
    assert all(c.ok for c in context["pool"].checks)
    assert (shown["alice"].taker_trades, shown["mm"].maker_trades, shown["bob"].open_rfqs) == (1, 1, 1)
    assert (shown["mm2"].live_quotes, shown["mm"].live_quotes, shown["bob"].taker_trades) == (1, 0, 0)
    assert context["totals"] | {"roles": None} == {
        "joined": 5, "roles": None, "connected": 0, "watching": 0, "trades": 1, "rfqs": 1, "quotes": 1
    }  # fmt: skip
    assert context["totals"]["roles"] == {"organiser": 1, "trader": 2, "maker": 2}
    assert dict(context["volume"]) == {
        "AAPL": Decimal("10.000000"), "NVDA": Decimal("6.200000"), "META": 0, "ORCL": 0
    }  # fmt: skip


@pytest.mark.django_db
def test_the_monitor_says_when_each_participant_last_acted_socket_or_not(users, traded):
    """A bot or a program has no socket ("never" connected) but trades: its last action shows it is alive."""
    clock.set_time(clock.now() + dt.timedelta(seconds=42))
    shown = {r.username: r for r in monitor_context("demo")["rows"]}
    assert shown["mm2"].connected is False and shown["mm2"].seen == "never"
    assert shown["mm2"].last_action == Quote.objects.get(maker__username="mm2").created_at
    assert shown["mm2"].acted == "42 s ago" and shown["alice"].acted == "42 s ago"
    assert shown["org"].last_action is None and shown["org"].acted == "never"
    trade = Trade.objects.get()
    assert shown["mm"].last_action == trade.executed_at == shown["alice"].last_action


@pytest.mark.django_db
def test_the_monitor_page_agrees_with_the_api(users, traded):
    api = api_client(users["org"])
    allocations = api.get("/api/v1/sessions/demo/allocations").json()
    latest = api.get("/api/v1/sessions/demo/prices").json()["latest"]
    trades = api.get("/api/v1/sessions/demo/trades").json()
    open_rfqs = api.get("/api/v1/sessions/demo/rfqs?status=open").json()
    shown = rows()
    for holding in allocations["holdings"]:
        price = {leg: Decimal(latest[leg]["price"]) for leg in allocations["legs"]}
        value = sum(Decimal(holding["x"][leg]) * price[leg] for leg in allocations["legs"])
        initial = sum(Decimal(holding["initial"][leg]) * price[leg] for leg in allocations["legs"])
        assert shown[holding["username"]].value == value
        assert shown[holding["username"]].pnl == value - initial
    for name, row in shown.items():
        assert row.taker_trades == sum(t["taker"] == name for t in trades)
        assert row.maker_trades == sum(t["maker"] == name for t in trades)
        assert row.open_rfqs == sum(r["taker"] == name for r in open_rfqs)
        assert row.live_quotes == sum(
            q["maker"] == name and q["status"] == "live" for r in open_rfqs for q in r["quotes"]
        )

    page = client_for(users["org"]).get(reverse("markets:monitor", args=["demo"])).content.decode()
    assert 'data-testid="row-alice"' in page and 'title="1076.240000000000"' in page  # alice's P&L, exact
    assert "+1,076.24" in page and "Pause trading" in page and "Settle…" in page
    live = client_for(users["org"]).get(reverse("markets:monitor_live", args=["demo"]), **HX).content.decode()
    assert 'id="monitor-live"' in live and 'id="monitor-controls"' in live and 'hx-swap-oob="true"' in live
    busy = client_for(users["org"]).get(reverse("markets:monitor_live", args=["demo"]) + "?controls=0", **HX)
    assert 'id="monitor-controls"' not in busy.content.decode()


# ---------------------------------------------------------------- pausing trading


@pytest.fixture
def quoted(users, demo):
    """An RFQ of alice's with a live quote of mm's: what a pause must not let trade."""
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    return rfq, services.provide_quote(users["mm"], rfq.id, "0.62", 600)


@pytest.mark.django_db
def test_a_pause_refuses_new_business_and_writes_nothing(users, quoted):
    rfq, quote = quoted
    session = services.pause_trading(users["org"], "demo", "  checking the feed ")
    assert session.paused_at is not None and session.pause_reason == "checking the feed"
    assert session.status == Session.Status.OPEN  # still open: nothing lapses
    before = written()
    for attempt in (
        lambda: services.request_rfq(users["bob"], "demo", "META", "ORCL", "1"),
        lambda: services.provide_quote(users["mm2"], rfq.id, "0.6"),
        lambda: services.accept_quote(users["alice"], quote.id),
    ):
        exc = refused(attempt)
        assert (exc.code, exc.kind) == ("trading_paused", "conflict")
        assert exc.message == "Trading is paused by the organiser: checking the feed"
        assert written() == before
    # Taking risk off the board is still allowed, and so is settling.
    assert services.withdraw_quote(users["mm"], quote.id).status == "withdrawn"
    assert services.cancel_rfq(users["alice"], rfq.id).status == "cancelled"
    add_ticks()
    assert services.settle_session(users["org"], "demo").status == Session.Status.SETTLED


@pytest.mark.django_db
def test_resuming_lets_trading_go_on(users, quoted):
    _, quote = quoted
    services.pause_trading(users["org"], "demo")
    assert refused(services.accept_quote, users["alice"], quote.id).message == "Trading is paused by the organiser"
    session = services.resume_trading(users["org"], "demo")
    assert (session.paused_at, session.pause_reason) == (None, "")
    assert services.accept_quote(users["alice"], quote.id).get_qty == 6_200_000
    types = list(Event.objects.filter(stream="session-demo").order_by("seq").values_list("type", flat=True))
    assert types[-3:] == ["TradingPaused", "TradingResumed", "TradeExecuted"]
    paused, resumed = Event.objects.filter(type__in=["TradingPaused", "TradingResumed"]).order_by("seq")
    assert paused.data == {"reason": "", "by_id": users["org"].pk} and resumed.data == {"by_id": users["org"].pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "code", "kind"),
    [
        ("alice", "not_organiser", "forbidden"),
        ("mm", "not_organiser", "forbidden"),
        ("eve", "not_a_participant", "forbidden"),
    ],
)
def test_only_the_organiser_pauses_and_resumes(users, demo, who, code, kind):
    before = written()
    for attempt in (services.pause_trading, services.resume_trading):
        exc = refused(attempt, users[who], "demo")
        assert (exc.code, exc.kind) == (code, kind)
    assert written() == before


@pytest.mark.django_db
def test_pausing_twice_resuming_unpaused_and_closed_sessions_are_refused(users, demo):
    assert refused(services.resume_trading, users["org"], "demo").code == "not_paused"
    services.pause_trading(users["org"], "demo")
    before = written()
    exc = refused(services.pause_trading, users["org"], "demo", "again")
    assert (exc.code, exc.kind, exc.message) == ("already_paused", "conflict", "Trading in demo is already paused")
    assert refused(services.pause_trading, users["org"], "demo", "x" * 501).code == "invalid_reason"
    assert refused(services.pause_trading, users["org"], "demo", "a\x00b").code == "invalid_reason"
    assert written() == before
    created = create_demo(users, "later", open_it=False)
    assert refused(services.pause_trading, users["org"], created.id).code == "session_not_open"
    add_ticks()
    services.settle_session(users["org"], "demo")
    assert refused(services.resume_trading, users["org"], "demo").code == "session_settled"
    assert refused(services.pause_trading, users["org"], "nope").code == "session_not_found"


@pytest.mark.django_db
def test_a_paused_timed_session_still_closes_at_t2(users):
    t0 = dt.datetime(2031, 6, 1, 9, 0, tzinfo=dt.UTC)
    clock.set_time(t0)
    create_demo(users, "timed", end_mode="timed", t2=t0 + dt.timedelta(minutes=5))
    services.pause_trading(users["org"], "timed", "lunch")
    clock.set_time(t0 + dt.timedelta(minutes=6))
    assert refused(services.request_rfq, users["alice"], "timed", "AAPL", "NVDA", "1").code == "trading_closed"
    assert refused(services.resume_trading, users["org"], "timed").code == "trading_closed"
    assert monitor_context("timed")["paused"] is False  # closed is what it is now, whatever the pause


@pytest.mark.django_db
def test_replay_and_verify_ledger_rebuild_the_pause(users, quoted):
    services.pause_trading(users["org"], "demo", "one")
    services.resume_trading(users["org"], "demo")
    services.pause_trading(users["org"], "demo", "two")
    stored = projections.snapshot("demo")
    assert stored["session"]["pause_reason"] == "two" and stored["session"]["paused_at"] is not None
    assert projections.diff(stored, projections.rebuild("demo")) == []
    assert audit.verify_session("demo").ok
    for quick in ((), ("--quick",)) if engine() == "sqlite" else ((),):  # --quick reads the SQLite file
        out = StringIO()
        call_command("verify_ledger", *quick, stdout=out)  # a failure raises CommandError
        assert "demo: 13 events, ok" in out.getvalue()
    log = [e.summary for e in selectors.event_log(Session.objects.get(id="demo"))[:3]]
    assert log == ["trading paused by org: two", "trading resumed by org", "trading paused by org: one"]


@pytest.mark.django_db
def test_the_api_pauses_refuses_with_the_code_and_resumes(users, quoted):
    rfq, quote = quoted
    org, alice, mm2 = api_client(users["org"]), api_client(users["alice"]), api_client(users["mm2"])
    refused_by = api_client(users["bob"]).post("/api/v1/sessions/demo/pause", content_type="application/json")
    assert (refused_by.status_code, refused_by.json()["code"]) == (403, "not_organiser")
    paused = org.post("/api/v1/sessions/demo/pause", {"reason": "fire drill"}, content_type="application/json")
    assert paused.status_code == 200, paused.content
    assert paused.json() | {"paused_at": None, "version": 0, "last_seq": 0} == {
        "session_id": "demo", "status": "open", "paused": True, "paused_at": None, "reason": "fire drill",
        "version": 0, "last_seq": 0,
    }  # fmt: skip
    before = written()
    for client, path, body in (
        (alice, "/api/v1/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1"}),
        (mm2, f"/api/v1/rfq/{rfq.id}/quote", {"rate": "0.6"}),
        (alice, f"/api/v1/quotes/{quote.id}/accept", None),
    ):
        answer = client.post(path, body, content_type="application/json")
        assert answer.status_code == 409
        assert answer.json() == {"code": "trading_paused", "message": "Trading is paused by the organiser: fire drill"}
    assert written() == before
    again = org.post("/api/v1/sessions/demo/pause", content_type="application/json")
    assert (again.status_code, again.json()["code"]) == (409, "already_paused")
    for body in ('{"reason": "' + "x" * 501 + '"}', '{"reason": "a\\u0000b"}', '{"why": "typo"}'):
        bad = org.post("/api/v1/sessions/demo/pause", body, content_type="application/json")
        assert bad.status_code == 422 and set(bad.json()) == {"code", "message"}, bad.content
    resumed = org.post("/api/v1/sessions/demo/resume", content_type="application/json")
    assert (resumed.status_code, resumed.json()["paused"], resumed.json()["reason"]) == (200, False, "")
    assert alice.post(f"/api/v1/quotes/{quote.id}/accept", content_type="application/json").status_code == 201
    unknown = org.post("/api/v1/sessions/nope/resume", content_type="application/json")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "session_not_found")


@pytest.mark.django_db
def test_the_floor_refuses_inline_while_paused(users, quoted):
    rfq, quote = quoted
    services.pause_trading(users["org"], "demo")
    before = written()
    alice, mm2 = client_for(users["alice"]), client_for(users["mm2"])
    for client, url, data in (
        (alice, reverse("markets:rfq_create", args=["demo"]), {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1"}),
        (mm2, reverse("markets:quote_create", args=[rfq.id]), {"rate": "0.6"}),
        (alice, reverse("markets:quote_accept", args=[quote.id]), {}),
    ):
        answer = client.post(url, data, **HX)
        assert answer.status_code == 200
        assert re.search(r'data-testid="error"[^>]*>Trading is paused by the organiser</p>', answer.content.decode())
    assert written() == before


# ---------------------------------------------------------------- the monitor's controls and who may use them


@pytest.mark.django_db
def test_the_monitor_pauses_and_resumes_with_inline_errors(users, demo):
    org = client_for(users["org"])
    answer = org.post(reverse("markets:monitor_pause", args=["demo"]), {"reason": "x" * 501}, **HX).content.decode()
    assert 'data-testid="control-error">The reason is 501 characters: at most 500</p>' in answer
    assert 'value="' + "x" * 501 + '"' in answer  # what was typed stays, to be corrected
    assert Session.objects.get(id="demo").paused_at is None
    answer = org.post(reverse("markets:monitor_pause", args=["demo"]), {"reason": "news"}, **HX).content.decode()
    assert "Trading paused since" in answer and ": news" in answer and "Resume trading" in answer
    assert (
        'data-testid="monitor-paused"' in answer and 'id="monitor-live" class="mon-live" hx-swap-oob="true"' in answer
    )
    answer = org.post(reverse("markets:monitor_pause", args=["demo"]), {"reason": "again"}, **HX).content.decode()
    assert "Trading in demo is already paused" in answer
    answer = org.post(reverse("markets:monitor_resume", args=["demo"]), **HX).content.decode()
    assert "Pause trading" in answer and Session.objects.get(id="demo").paused_at is None
    # Without htmx: back to the page, the refusal as a message.
    plain = org.post(reverse("markets:monitor_resume", args=["demo"]), follow=True)
    assert plain.redirect_chain[-1][0] == reverse("markets:monitor", args=["demo"])
    assert "Trading in demo is not paused" in plain.content.decode()


@pytest.mark.django_db
def test_the_monitor_opens_and_settles_in_two_steps(users):
    create_demo(users, "fresh", open_it=False)
    org = client_for(users["org"])
    page = org.get(reverse("markets:monitor", args=["fresh"])).content.decode()
    assert "Open session &amp; allocate" in page and "Pause trading" not in page
    org.post(reverse("markets:monitor_open", args=["fresh"]), **HX)
    assert Session.objects.get(id="fresh").status == "open"
    add_ticks(session_id="fresh")
    before = written("fresh")
    preview = org.get(reverse("markets:monitor_settle", args=["fresh"]), **HX).content.decode()
    assert "Confirm settlement" in preview and "190.100000" in preview and "data-preview" in preview
    assert written("fresh") == before  # the preview writes nothing
    at = selectors.fixing_preview(Session.objects.get(id="fresh"))["at"]
    bad = org.post(reverse("markets:monitor_settle", args=["fresh"]), {"fixing_at": "soon"}, **HX).content.decode()
    assert "The fixing time is not a valid date" in bad and written("fresh") == before
    done = org.post(reverse("markets:monitor_settle", args=["fresh"]), {"fixing_at": at.isoformat()}, **HX)
    assert "Settled: payouts are final." in done.content.decode()
    assert Session.objects.get(id="fresh").status == "settled"


@pytest.mark.django_db
def test_who_may_open_the_monitor(users, demo):
    url = reverse("markets:monitor", args=["demo"])
    assert Client().get(url).status_code == 302  # sign in first
    for who in ("alice", "mm", "eve"):
        answer = client_for(users[who]).get(url)
        assert answer.status_code == 403 and "Only the organiser of demo (or staff)" in answer.content.decode()
    staff = make_user("ops")
    staff.is_staff = True
    staff.save()
    page = client_for(staff).get(url).content.decode()
    assert "You are watching as staff" in page and "Pause trading" not in page
    assert client_for(users["org"]).get(reverse("markets:monitor", args=["nope"])).status_code == 404
    private = create_demo(users, "private", visibility="participants")
    assert client_for(staff).get(reverse("markets:monitor", args=[private.id])).status_code == 403  # not visible
    assert client_for(users["org"]).get(reverse("markets:monitor", args=[private.id])).status_code == 200
    # A watcher's pause through the monitor's own endpoint is refused by the service.
    answer = client_for(users["alice"]).post(reverse("markets:monitor_pause", args=["demo"]), **HX)
    assert answer.status_code == 403 and Session.objects.get(id="demo").paused_at is None
    answer = client_for(staff).post(reverse("markets:monitor_pause", args=["demo"]), **HX).content.decode()
    assert "You have not joined session demo" in answer and Session.objects.get(id="demo").paused_at is None


# ---------------------------------------------------------------- in a real browser


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_the_monitor_shows_a_connect_and_a_trade_without_reload(browser, server, users, demo):  # noqa: F811
    add_ticks()
    rfq = services.request_rfq(users["bob"], "demo", "ORCL", "META", "3")
    services.provide_quote(users["mm2"], rfq.id, "0.3", 3600)
    org = signed_in_page(browser, server, users["org"])
    org.add_init_script(  # when the page asks for its live part, by the page's own clock
        "window.__refreshes = []; document.addEventListener('htmx:beforeRequest', function (e) {"
        " if ((e.detail.requestConfig || {}).path.indexOf('/monitor/live') >= 0) window.__refreshes.push(performance.now()); });"
    )
    org.goto(f"{server.url}/sessions/demo/monitor")
    org.wait_for_selector("#monitor-socket.on", timeout=10_000)
    alice_cell = org.locator("[data-testid=presence-alice]")
    assert alice_cell.inner_text().strip() == "never"
    org.locator("[data-testid=presence-org].on").wait_for(timeout=5_000)  # the monitor's own socket

    # A participant opens the floor in another browser: the monitor shows it connected, without reload.
    alice = signed_in_page(browser, server, users["alice"])
    alice.goto(f"{server.url}/sessions/demo/")
    alice.wait_for_selector("#live.on", timeout=10_000)
    org.locator("[data-testid=presence-alice].on").wait_for(timeout=5_000)
    assert "connected" in alice_cell.inner_text()
    mm = signed_in_page(browser, server, users["mm"])
    mm.goto(f"{server.url}/sessions/demo/")
    mm.wait_for_selector("#live.on", timeout=10_000)
    org.locator("[data-testid=presence-mm].on").wait_for(timeout=5_000)

    # A trade made elsewhere appears: the count, the taker's and the maker's rows, the new values.
    trade_rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.accept_quote(users["alice"], services.provide_quote(users["mm"], trade_rfq.id, "0.62").id)
    org.locator("[data-testid=trade-count]", has_text="1").wait_for(timeout=5_000)
    row = org.locator("[data-testid=row-alice]")
    row.locator("text=+1,076.24").wait_for(timeout=5_000)
    assert org.locator("[data-testid=pnl-mm]").inner_text() == "-1,076.24"
    assert "10.000000" in org.locator("[data-testid=monitor-volume]").inner_text()

    # The organiser pauses from the monitor: the participant's floor says so at once.
    org.locator("input[name=reason]").fill("checking a price")
    org.get_by_role("button", name="Pause trading").click()
    org.locator("[data-testid=monitor-paused]").wait_for(timeout=5_000)
    assert org.locator("[data-testid=paused-note]").inner_text().endswith(": checking a price")
    alice.locator("#events", has_text="trading paused by org: checking a price").wait_for(timeout=5_000)
    # Her floor says so, and offers nothing that would be refused (the services refuse it anyway).
    alice.locator("[data-testid=trading-paused]", has_text="checking a price").wait_for(timeout=5_000)
    alice.locator("[data-testid=rfq-form]").wait_for(state="detached", timeout=5_000)

    mm.close()  # mm leaves: "x s ago" instead of the dot
    org.locator("[data-testid=presence-mm]:not(.on)").wait_for(timeout=5_000)
    org.wait_for_timeout(400)
    # The README's picture (from the SQLite run; the PostgreSQL run keeps its own beside the other artifacts).
    picture = ARTIFACTS / "monitor.png"  # docs/monitor.png is test_e2e_session's class with bots
    org.screenshot(path=str(picture), full_page=True)
    refreshes = org.evaluate("window.__refreshes")
    gaps = [b - a for a, b in itertools.pairwise(refreshes)]
    assert len(refreshes) >= 3 and min(gaps) >= 330, gaps  # debounced: at most ~3 refreshes a second

    # At 375 px the page does not scroll sideways: the table scrolls inside its card.
    phone = browser.new_context(viewport={"width": 375, "height": 800})
    phone.add_cookies(org.context.cookies())
    small = phone.new_page()
    small.goto(f"{server.url}/sessions/demo/monitor")
    small.wait_for_selector("#monitor-socket.on", timeout=10_000)
    assert small.evaluate("document.documentElement.scrollWidth") <= 375
    assert small.evaluate("document.querySelector('.mon-scroll').scrollWidth > 375")
    small.screenshot(path=str(ARTIFACTS / "monitor-375.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_presence_commits_lightly_and_the_ledger_stays_durable(users, demo):
    """Who is online is written without waiting for the disk; the same connection's next command commits
    with the ledger's full durability again."""
    from django.db import connection

    def synchronous() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous" if engine() == "sqlite" else "SHOW synchronous_commit")
            return cursor.fetchone()[0]

    durable = synchronous()
    presence.record({("demo", users["alice"].pk): 2, ("demo", users["bob"].pk): 1})
    presence.record({("demo", users["alice"].pk): -1, ("demo", users["bob"].pk): 0})
    counts = dict(Presence.objects.values_list("user__username", "sockets"))
    assert counts == {"alice": 1, "bob": 1}
    assert synchronous() == durable == (2 if engine() == "sqlite" else "on")  # FULL, or PostgreSQL's on


@pytest.mark.django_db
def test_a_paused_session_says_so_in_the_sessions_list_and_the_api(users, demo):
    """Everyone looking for the session sees the pause where they look first, with its reason."""
    from django.test import Client

    services.pause_trading(users["org"], "demo", "a question from the room")
    bob = Client()
    bob.force_login(users["bob"])
    page = bob.get("/").content.decode()
    assert '<span class="badge open paused">Paused</span>' in page
    assert "trading paused by the organiser since" in page and "a question from the room" in page
    headers = {"Authorization": f"Bearer {tokens.create_token(users['bob'], name='t')[1]}"}
    body = Client().get("/api/v1/sessions/demo", headers=headers).json()
    assert body["status"] == "open" and body["paused"] is True
    assert body["status_note"].startswith("trading paused by the organiser since")
    services.resume_trading(users["org"], "demo")
    page = bob.get("/").content.decode()
    assert '<span class="badge open">Open</span>' in page and "paused" not in page.split("<tbody")[-1]
