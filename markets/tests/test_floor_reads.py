"""The floor read once: a session's prices in one statement (the same answer as a query per leg, on
either engine), a chart that carries one point per two units of width, and renderings shared by every
viewer at one position, among threads and sockets, and never served once the floor moved."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import clock
from markets import selectors, services
from markets.models import Presence, Session, Trade
from markets.push import snapshot
from markets.selectors.chart import price_chart
from markets.selectors.prices import latest_prices, price_history
from markets.tests.test_consumers import connect, in_thread
from markets.tests.test_views import client_for
from oracle.models import Tick

pytestmark = pytest.mark.django_db

LEGS = ("AAPL", "NVDA", "META", "ORCL")


def _per_leg(session: Session, until: dt.datetime | None, window: int) -> tuple[dict, dict]:
    """The answer the ORM gives, one query per leg: what the one statement must equal."""
    since = session.opened_at or session.created_at
    recent, first = {}, {}
    for leg in session.legs:
        ticks = Tick.objects.filter(session_id=session.id, symbol=leg)
        if until is not None:
            ticks = ticks.filter(at__lte=until)
        recent[leg] = list(ticks.order_by("-at", "-id").values_list("at", "price")[:window])[::-1]
        price = ticks.filter(at__gte=since).order_by("at", "id").values_list("price", flat=True).first()
        if price is not None:
            first[leg] = price
    return recent, first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ticks=st.lists(
        st.tuples(st.sampled_from(LEGS), st.integers(-30, 30), st.integers(1, 10**9)), min_size=0, max_size=40
    ),
    window=st.integers(1, 6),
    cut=st.one_of(st.none(), st.integers(-30, 30)),
)
def test_one_statement_reads_what_a_query_per_leg_reads(demo, ticks, window, cut):
    """Ticks before and after the opening, several at one instant, a cut-off (a settled session's
    fixing) or none: the union gives each leg's newest `window`, oldest first, its first price since the
    opening, and the latest prices."""
    Tick.objects.filter(session_id="demo").delete()
    session = Session.objects.get(id="demo")
    opened = session.opened_at
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=leg, at=opened + dt.timedelta(seconds=s), price=p, source="t")
        for leg, s, p in ticks
    )
    until = opened + dt.timedelta(seconds=cut) if cut is not None else None
    history = price_history(session, until=until, window=window)
    recent, first = _per_leg(session, until, window)
    assert history.recent == recent and history.first == first
    everything = price_history(session, window=window)
    newest = {leg: rows[-1][1] for leg, rows in _per_leg(session, None, window)[0].items() if rows}
    assert latest_prices(session) == everything.latest() == newest


def test_the_floor_reads_every_price_in_one_statement(users, demo):
    start = clock.now()
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=leg, at=start + dt.timedelta(seconds=k), price=10**8 + k, source="t")
        for k in range(50)
        for leg in LEGS
    )
    with CaptureQueriesContext(connection) as queries:
        selectors.floor_context("demo")
    tick_reads = [q["sql"] for q in queries.captured_queries if "oracle_tick" in q["sql"]]
    assert len(tick_reads) == 2, tick_reads  # the floor's position (its last tick), and every price


def test_a_long_window_draws_at_most_one_point_per_two_units_of_width(users, demo):
    """600 ticks a leg on a 588-unit plot: about 294 points, the first and the last tick among them."""
    start = clock.now()
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=leg, at=start + dt.timedelta(seconds=k), price=10**8 + k * 1000, source="t")
        for k in range(600)
        for leg in LEGS
    )
    chart = price_chart(Session.objects.get(id="demo"))
    width = chart.plot_right - chart.plot_left
    for series in chart.series:
        points = [tuple(map(float, p.split(","))) for p in series.points.split()]
        assert width // 2 - 2 <= len(points) <= width // 2 + 2
        assert points[0][0] == chart.plot_left and points[-1][0] == chart.plot_right
        assert [x for x, _ in points] == sorted(x for x, _ in points)


def test_viewers_at_one_position_share_one_rendering_and_a_change_renders_anew(users, demo):
    pages = {name: client_for(users[name]) for name in ("alice", "bob", "mm", "org")}
    before = dict(snapshot.stats)
    first = {name: c.get(reverse("markets:floor", args=["demo"])).content.decode() for name, c in pages.items()}
    assert snapshot.stats["rendered"] - before["rendered"] == 1
    assert snapshot.stats["shared"] - before["shared"] == 3
    assert all('data-testid="holdings"' in page for page in first.values())
    # Each still gets their own board and controls from the shared data.
    assert 'data-testid="rfq-form"' in first["alice"] and 'data-testid="rfq-form"' not in first["org"]
    services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "3")
    again = pages["bob"].get(reverse("markets:floor", args=["demo"])).content.decode()
    assert snapshot.stats["rendered"] - before["rendered"] == 2
    assert "alice gives 3 AAPL for NVDA" in again and "alice gives 3 AAPL" not in first["bob"]
    Tick.objects.create(session_id="demo", symbol="AAPL", at=clock.now(), price=123_450_000, source="t")
    priced = pages["bob"].get(reverse("markets:floor", args=["demo"])).content.decode()
    assert snapshot.stats["rendered"] - before["rendered"] == 3 and "123.45" in priced


def test_trading_closing_at_t2_is_a_new_position_without_an_event(users, demo):
    """t2 passing changes the floor (phase "Trading closed") before the scheduler writes TradingClosed."""
    session = Session.objects.get(id="demo")
    Session.objects.filter(id="demo").update(end_mode=Session.EndMode.TIMED, t2=clock.now() + dt.timedelta(hours=1))
    page = client_for(users["bob"])
    assert 'data-testid="rfq-form"' in page.get(reverse("markets:floor", args=["demo"])).content.decode()
    with clock.frozen(clock.now() + dt.timedelta(hours=2)):
        later = page.get(reverse("markets:floor", args=["demo"])).content.decode()
    assert "Trading closed" in later and 'data-testid="rfq-form"' not in later
    assert session.last_seq == Session.objects.get(id="demo").last_seq  # no event was written


@pytest.mark.django_db(transaction=True)
def test_threads_asking_at_once_wait_for_one_rendering(users, demo):
    """Eight request threads on their own connections at one position: one renders, seven wait for it."""
    before = dict(snapshot.stats)
    session = Session.objects.get(id="demo")
    start = threading.Barrier(8)
    got: list[str] = []

    def ask() -> None:
        start.wait()
        got.append(snapshot.floor(session, oob=False)["html"])
        connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(got) == 8 and len(set(got)) == 1
    assert snapshot.stats["rendered"] - before["rendered"] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_storm_renders_the_floor_once(users, demo):
    """Thirty sockets of five people connecting at once (as after a restart) all get the whole floor,
    each with their own board, from one rendering, and are all counted present."""
    await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "2")
    before = dict(snapshot.stats)
    people = ["alice", "bob", "mm", "mm2", "org"] * 6
    comms = [await connect(users[name]) for name in people]
    assert all(ok for ok, _ in await asyncio.gather(*(c.connect() for c in comms)))
    floors = await asyncio.gather(*(c.receive_from(timeout=10) for c in comms))
    assert all('id="holdings"' in f and 'id="board"' in f for f in floors)
    assert snapshot.stats["rendered"] - before["rendered"] == 1
    expected = dict.fromkeys(("alice", "bob", "mm", "mm2", "org"), 6)
    for _ in range(100):  # written after each floor is sent, together while one write is in flight
        counted = await sync_to_async(lambda: dict(Presence.objects.values_list("user__username", "sockets")))()
        if counted == expected:
            break
        await asyncio.sleep(0.05)
    assert counted == expected
    mm_floor = floors[people.index("mm")]
    alice_floor = floors[people.index("alice")]
    assert 'data-testid="quote-form-' in mm_floor and 'data-testid="quote-form-' not in alice_floor
    for comm in comms:
        await comm.disconnect()


def test_the_floor_shows_the_newest_25_and_links_to_every_trade_and_event_a_page_at_a_time(users, demo):
    for _ in range(40):
        rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "0.1")
        services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.5").id)
    bob = client_for(users["bob"])
    floor = bob.get(reverse("markets:floor", args=["demo"])).content.decode()
    assert 'data-testid="all-trades"' in floor and 'data-testid="all-events"' in floor
    trades = list(Trade.objects.filter(session_id="demo").order_by("-id").values_list("id", flat=True))
    page = bob.get(reverse("markets:trades", args=["demo"])).content.decode()
    shown = [int(i) for i in re.findall(r'<tr><td class="mono">(\d+)</td>', page)]
    assert shown == trades and "40 in all" in page and 'data-testid="older"' not in page
    session = Session.objects.get(id="demo")
    log = bob.get(reverse("markets:log", args=["demo"])).content.decode()
    seqs = [int(s) for s in re.findall(r'<tr><td class="num mono">(\d+)</td>', log)]
    assert len(seqs) == 100 and seqs[0] == session.last_seq and 'data-testid="older"' in log
    older = re.search(r'href="\?before=(\d+)" data-testid="older"', log).group(1)
    rest = bob.get(reverse("markets:log", args=["demo"]) + f"?before={older}").content.decode()
    rest_seqs = [int(s) for s in re.findall(r'<tr><td class="num mono">(\d+)</td>', rest)]
    assert rest_seqs and max(rest_seqs) < min(seqs) and len(seqs) + len(rest_seqs) == session.version
    assert bob.get(reverse("markets:log", args=["demo"]) + "?before=x1").status_code == 400
    assert client_for(users["eve"]).get(reverse("markets:trades", args=["nope"])).status_code == 404


@pytest.mark.sqlite_only("reads SQLite's EXPLAIN QUERY PLAN")
def test_the_newest_events_trades_and_board_come_by_an_index_in_order(users, demo):
    """The floor's newest 25 events, trades and open RFQs are read in index order, not by sorting every
    row of the session: a session of 50,000 events would otherwise sort them all on every render."""
    from ledger.models import Event
    from markets.models import RFQ

    reads = {
        "events": Event.objects.filter(stream="session-demo").order_by("-seq")[:25],
        "trades": Trade.objects.filter(session_id="demo").order_by("-id")[:25],
        "board": RFQ.objects.filter(session_id="demo", status=RFQ.Status.OPEN).order_by("-id")[:25],
    }
    for name, query in reads.items():
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " / ".join(str(row[-1]) for row in cursor.fetchall())
        assert "USING" in plan and "TEMP B-TREE" not in plan, f"{name}: {plan}"
