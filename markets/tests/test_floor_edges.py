"""What a newcomer hit on the floor, each as a person sees it: the icon, /sessions/, plain numbers, the
fair-rate hints, refusals that name themselves where the person acted, a settled session's prices
standing still, and the price chart."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from ledger import clock
from ledger.models import Event
from markets import domain, pricing, selectors, services
from markets.models import Session
from markets.selectors.chart import price_chart
from markets.tests.test_views import HX, add_ticks, client_for, written
from oracle.models import Tick

pytestmark = pytest.mark.django_db

PRICES = {"AAPL": "190.10", "NVDA": "480.20", "META": "350.00", "ORCL": "104.30"}


@pytest.fixture
def priced(demo):
    add_ticks("demo", PRICES)
    return demo


def floor_page(user) -> str:
    return client_for(user).get(reverse("markets:floor", args=["demo"])).content.decode()


def test_every_page_has_an_icon_and_favicon_ico_finds_it(users):
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in Client().get(reverse("login")).content.decode()


def test_sessions_slash_is_the_sessions_list(users):
    response = client_for(users["alice"]).get("/sessions/")
    assert response.status_code == 302 and response["Location"] == reverse("markets:session_list")


def test_numbers_are_written_as_people_write_them(users, priced):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    services.accept_quote(users["alice"], quote.id)
    page = floor_page(users["alice"])
    assert "q 100<" in page and "E+" not in page  # never 1E+2
    assert "1 trade, ΣΔx = 0" in page  # not "1 trades"
    assert f"quote {quote.id} on RFQ {rfq.id}: mm at 0.62<" in page  # the log does not say 0.62000000
    assert "0.62000000" not in page
    assert re.search(r">10</td><td>AAPL</td><td class=\"num\">6.2</td>", page), "the blotter writes 10 and 6.2"


def test_the_fair_rate_stands_beside_each_rfq_quote_and_the_makers_form(users, priced):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    fair = pricing.implied_rate(190_100000, 480_200000)  # price of AAPL / price of NVDA
    assert domain.rate_str(fair) == "0.39587672"
    services.provide_quote(users["mm"], rfq.id, "0.38")
    (row,) = selectors.board_data(Session.objects.get(id="demo"))
    assert row["fair"] == Decimal("0.39587672")
    # 0.38 is 4.01% less NVDA for alice than the prices imply.
    assert row["quotes"][0]["vs_fair"] == "-4.01%"

    alice = floor_page(users["alice"])
    table = json.loads(html.unescape(re.search(r"data-fair='([^']+)'", alice).group(1)))
    assert table["AAPL"]["NVDA"] == "0.39587672" and table["NVDA"]["AAPL"] == domain.rate_str(
        pricing.implied_rate(480_200000, 190_100000)
    )
    assert 'data-testid="fair-hint"' in alice  # the RFQ form's hint (written by the page's script)
    assert "fair <span" in alice and ">-4.01%<" in alice
    # mm2's quote form opens at the fair rate (4 decimals), ready to shade by a spread.
    assert 'value="0.3958"' in floor_page(users["mm2"])


def test_the_demo_seeds_quotes_near_the_fair_rate():
    from markets.management.commands.seed_demo import seed_rate

    assert Decimal(seed_rate("AAPL", "NVDA")) == Decimal("1.6952")  # fair ≈ 1.7037 at the sim's start
    assert Decimal(seed_rate("ORCL", "META")) == Decimal("0.2819")


@given(st.integers(1, 10**12), st.integers(1, 10**12))
def test_the_implied_rate_is_the_price_ratio_to_the_nearest_unit(give, get):
    rate = pricing.implied_rate(give, get)
    # |rate - give/get * SCALE| <= 1/2, in integers.
    assert abs(2 * rate * get - 2 * give * domain.RATE_SCALE) <= get
    if rate:  # a rate too small for 8 decimals has no distance to speak of
        assert pricing.distance_bp(rate, rate) == 0
        assert pricing.distance_bp(rate + rate, rate) == 10000


def test_accepting_a_quote_already_filled_says_so_on_the_board(users, priced):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.40")
    services.accept_quote(users["alice"], quote.id)  # the first tab
    before = written()
    second_tab = client_for(users["alice"]).post(reverse("markets:quote_accept", args=[quote.id]), **HX)
    body = second_tab.content.decode()
    assert second_tab.status_code == 200
    assert 'role="alert"' in body and "filled" in body.lower(), body
    assert written() == before


def test_a_refused_rfq_is_said_where_it_was_asked(users, priced):
    """eve never joined: the form is not hers, but a stale page or a crafted post still gets an answer."""
    before = written()
    response = client_for(users["eve"]).post(
        reverse("markets:rfq_create", args=["demo"]), {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1"}, **HX
    )
    body = response.content.decode()
    assert 'role="alert"' in body and "not joined" in body
    assert written() == before


def test_a_settled_session_shows_its_settlement_prices_not_later_ticks(users, priced):
    org = users["org"]
    services.settle_session(org, "demo", prices={"AAPL": "200", "NVDA": "500", "META": "300", "ORCL": "100"})
    Tick.objects.create(
        session_id="demo", symbol="AAPL", at=clock.now() + dt.timedelta(seconds=5), price=999_000000, source="test"
    )
    page = floor_page(users["alice"])
    assert 'data-testid="price-AAPL">200.00<' in page
    assert "999" not in page.split('id="legs"')[1].split("</section>")[0]
    assert "the settlement price" in page
    rows = selectors.session_rows(users["alice"])
    settlement = rows[0].session.settlement
    assert rows[0].pool_value == Decimal(settlement.total)  # the list's pool value is Σ payouts


def test_the_chart_draws_each_leg_and_marks_trades(users, priced):
    start = clock.now()
    for k in range(1, 30):
        at = start + dt.timedelta(seconds=k)
        for leg, price in PRICES.items():
            Tick.objects.create(
                session_id="demo", symbol=leg, at=at, price=int(Decimal(price) * 10**6) + k * 1000, source="t"
            )
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    with clock.frozen(start + dt.timedelta(seconds=10)):
        trade = services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.40").id)
    session = Session.objects.get(id="demo")
    chart = price_chart(session)
    assert [s.leg for s in chart.series] == ["AAPL", "NVDA", "META", "ORCL"]
    assert all(len(s.points.split()) == 30 for s in chart.series)
    assert len(chart.trades) == 1 and f"trade {trade.id}" in chart.trades[0][1]
    assert chart.x_ticks and chart.y_ticks
    # AAPL rose 29 * 0.001 from 190.10: its index is exact to the cent.
    assert chart.series[0].last_index == (Decimal("190.129") * 100 / Decimal("190.10")).quantize(Decimal("0.01"))
    page = floor_page(users["alice"])
    assert page.count('data-testid="trade-mark"') == 1 and 'data-testid="chart"' in page


def test_trades_close_on_the_time_axis_share_one_mark_that_lists_them(users, priced, monkeypatch):
    """A busy second is one mark, not a fence of lines: its tooltip counts the trades and names the
    newest; a trade well apart keeps a mark of its own."""
    start = clock.now()
    for k in range(1, 121):
        for leg, price in PRICES.items():
            Tick.objects.create(
                session_id="demo", symbol=leg, at=start + dt.timedelta(seconds=k), price=int(Decimal(price) * 10**6)
            )
    made = []
    for second in (30, 30, 30, 30, 30, 30, 30, 30, 100):
        rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
        with clock.frozen(start + dt.timedelta(seconds=second)):
            made.append(services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.40").id))
    chart = price_chart(Session.objects.get(id="demo"))
    busy, lone = chart.trades
    assert busy[1].splitlines()[0].startswith("8 trades ")
    assert f"trade {made[7].id} " in busy[1].splitlines()[1]  # the newest first
    assert busy[1].splitlines()[-1] == "… and 2 more" and f"trade {made[0].id} " not in busy[1]
    assert lone[1].startswith(f"trade {made[8].id} ") and lone[0] > busy[0]
    page = floor_page(users["alice"])
    assert page.count('data-testid="trade-mark"') == 2 and "(the newest" not in page
    monkeypatch.setattr("markets.selectors.chart.MARKS_READ", 4)  # more trades than the chart marks
    chart = price_chart(Session.objects.get(id="demo"))
    assert chart.marks_capped and len(chart.trades) == 2
    assert chart.trades[0][1].startswith("3 trades ") and chart.trades[1][1].startswith(f"trade {made[8].id} ")


def test_the_chart_waits_for_prices(users, demo):
    page = floor_page(users["alice"])
    assert "No prices yet: the chart draws from the oracle's second tick" in html.unescape(page)
    assert Event.objects.filter(type="TradeExecuted").count() == 0


def test_a_paused_session_says_so_on_every_floor(users, priced):
    services.pause_trading(users["org"], "demo", "a question from the room")
    page = html.unescape(floor_page(users["alice"]))
    assert "Trading is paused by the organiser since" in page and "a question from the room" in page
    assert 'data-testid="rfq-form"' not in page  # nothing to press that would be refused
    services.resume_trading(users["org"], "demo")
    assert "Trading is paused" not in floor_page(users["alice"])
