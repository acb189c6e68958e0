"""Bounded shorting as people see it: the create form's settings, my margin panel on the floor, what
accepting a quote or placing an order would do to W before it is pressed, the liquidation in the log, and
the refusal's figures inline; a floor without shorting reads nothing more."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conftest import create_demo
from markets import services
from markets.models import Session
from markets.push import snapshot
from markets.push.panels import EVERYTHING, TICK, stale
from markets.push.render import render_board, render_mine, render_panels
from markets.selectors.events import summarize
from markets.tests.test_margin import PRICES, shorting, tick, trade
from markets.tests.test_views import client_for

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- the create form


def _form(**fields) -> dict:
    return {
        "session_id": "short1",
        "legs": "AAPL, NVDA",
        "q": "100, 60",
        "start_mode": "immediate",
        "end_mode": "manual",
        "allocation_mode": "pro_rata",
        "fixing_rule": "last",
        "mechanism": "rfq",
        "short_limit": "0.2",  # what the browser posts: the fields' defaults, shown or hidden
        "margin_band": "0.15",
        "initial_margin": "0.05",
    } | fields


def test_the_form_offers_shorting_off_with_its_defaults_shown(users):
    page = client_for(users["org"]).get(reverse("markets:session_list")).content.decode()
    assert 'name="allow_shorting"' in page and 'name="allow_shorting" checked' not in page
    for name, value in (("short_limit", "0.2"), ("margin_band", "0.15"), ("initial_margin", "0.05")):
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', page), name


def test_the_form_creates_a_shorting_session_and_leaves_it_off_unticked(users):
    client = client_for(users["org"])
    client.post(reverse("markets:session_list"), _form(allow_shorting="on", short_limit="0,25", margin_band="0.1"))
    session = Session.objects.get(id="short1")
    assert (session.short_limit, session.margin_band, session.initial_margin) == ("0.25", "0.1", "0.05")
    client.post(reverse("markets:session_list"), _form(session_id="plain1"))
    assert not Session.objects.get(id="plain1").shorting


def test_a_bad_setting_is_refused_beside_its_field_with_the_services_message(users):
    response = client_for(users["org"]).post(
        reverse("markets:session_list"), _form(allow_shorting="on", margin_band="2"), HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert not Session.objects.filter(id="short1").exists()
    label = re.search(r'<label class="has-error short-only">Margin band.*?</label>', page, re.S)
    assert label and "margin_band must be above 0 and at most 0.9" in label.group(0)


# ---------------------------------------------------------------- my margin on the floor


def _floor(users, who: str) -> str:
    snapshot.forget()
    return client_for(users[who]).get(reverse("markets:floor", args=["demo"])).content.decode()


def test_my_margin_panel_says_w_the_requirement_and_the_short_used(users):
    shorting(users)
    trade(users, "alice", "mm", "AAPL", "ORCL", "35", "1.2")  # alice: 25 - 35 = -10 AAPL, 30 + 42 ORCL
    page = _floor(users, "alice")
    panel = re.search(r'data-testid="my-margin".*?</table>', page, re.S).group(0)
    # W = 15 NVDA*50*0.85 + 20 META*80*0.85 + 72 ORCL*20*0.85 - 10 AAPL*100*1.15 = 637.5+1360+1224-1150
    assert 'data-testid="margin-w">2,071.50<' in panel
    assert 'data-testid="margin-requirement">50.00<' in panel  # 5% of 10 x 100
    assert 'data-status="ok"' in panel
    assert 'data-testid="short-used-AAPL">50%<' in panel  # 10 of the 20 allowed
    assert "OK: W 2,071.50 is above the requirement 50.00 (room 2,021.50)" in _text(panel)


def test_reduce_only_is_said_plainly_with_the_figures(users):
    shorting(users, initial_margin="0.5")
    trade(users, "alice", "mm", "AAPL", "ORCL", "40", "1.2")  # -15 AAPL, 78 ORCL
    tick("demo", {"AAPL": 170})  # W = 637.5 + 1360 + 1326 - 15 x 170 x 1.15 = 391, under 0.5 x 15 x 170
    said = _text(re.search(r'data-testid="margin-said">(.*?)</p>', _floor(users, "alice"), re.S).group(1))
    assert said == ("Reduce-only: W 391.00 is under the requirement 1,275.00 — only trades that raise W are accepted.")


def _reads(session_id: str, panels) -> int:
    snapshot.forget()
    with CaptureQueriesContext(connection) as reads:
        render_panels(session_id, panels)
    return len(reads.captured_queries)


def test_a_floor_without_shorting_shows_no_margin_and_shorting_adds_few_reads(users):
    create_demo(users)
    tick("demo", PRICES)
    assert 'data-testid="my-margin"' not in _floor(users, "alice")
    plain = {name: _reads("demo", panels) for name, panels in (("tick", stale([TICK])), ("whole", EVERYTHING))}
    services.create_session(users["org"], session_id="sh", legs=["AAPL", "NVDA"], q=[100, 60], short_limit="0.2")
    for name in ("alice", "bob"):
        services.join_session(users[name], "sh", "trader")
    services.open_session(users["org"], "sh")
    tick("sh", {"AAPL": 100, "NVDA": 50})
    shorting_reads = {name: _reads("sh", panels) for name, panels in (("tick", stale([TICK])), ("whole", EVERYTHING))}
    # A whole floor reads the participants anyway (who was liquidated comes with them); a tick adds them
    # and the open RFQs (for the quote previews; their quotes too when there are some).
    assert shorting_reads["whole"] == plain["whole"], (plain, shorting_reads)
    assert shorting_reads["tick"] == plain["tick"] + 2, (plain, shorting_reads)


# ---------------------------------------------------------------- before pressing Accept


def test_the_taker_sees_what_accepting_each_quote_would_do_to_w(users):
    shorting(users, margin_band="0.5", initial_margin="0.5")
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "ORCL", "20")
    fits = services.provide_quote(users["mm"], rfq.id, "1.2")
    page = _floor(users, "alice")
    preview = _text(re.search(rf'data-testid="preview-{fits.id}".*?</div>', page, re.S).group(0))
    assert "If you accept: W " in preview and "✓" in preview
    assert 'data-testid="preview-' not in _floor(users, "bob")  # only the taker sees it


def test_a_quote_that_would_break_the_margin_says_so_before_accept_and_the_refusal_agrees(users):
    shorting(users, margin_band="0.5", initial_margin="0.5")
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "ORCL", "40")
    bad = services.provide_quote(users["mm"], rfq.id, "1.2")  # -15 AAPL: W = 375 + 800 + 780 - 2250 < 0
    page = _floor(users, "alice")
    preview = _text(re.search(rf'data-testid="preview-{bad.id}".*?</div>', page, re.S).group(0))
    assert "✗ Would be refused (margin)" in preview
    response = client_for(users["alice"]).post(reverse("markets:quote_accept", args=[bad.id]), HTTP_HX_REQUEST="true")
    error = _text(re.search(r'data-testid="error"[^>]*>(.*?)</p>', response.content.decode(), re.S).group(1))
    assert error.startswith("Margin: this would leave you with W -295.00 below the requirement 750.00")
    assert error.split("W ")[1].split(" ")[0].replace(",", "") in preview.replace(",", "")


def test_a_tick_sends_the_taker_the_previews_anew_with_the_margin_panel(users):
    shorting(users, margin_band="0.5", initial_margin="0.5")
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "ORCL", "20")
    quote = services.provide_quote(users["mm"], rfq.id, "1.2")
    tick("demo", {"AAPL": 130})
    panels = render_panels("demo", stale([TICK]))
    assert panels["board"] is None  # the board itself is not redrawn on a tick
    me = Session.objects.get(id="demo").participants.get(user=users["alice"])
    html = render_mine(panels, me)
    assert f'id="preview-{quote.id}"' in html and 'hx-swap-oob="true"' in html
    assert 'data-testid="my-margin"' in html


def test_a_quoting_batch_sent_whole_keeps_the_takers_previews_on_the_board(users):
    """A floor that stands elsewhere is sent the quoting batch's panels whole (status, log, board): the
    board it gets must still carry the taker's preview, or the line under the quote vanishes."""
    shorting(users, margin_band="0.5", initial_margin="0.5")
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "ORCL", "20")
    quote = services.provide_quote(users["mm"], rfq.id, "1.2")
    panels = render_panels("demo", stale(["QuoteProvided"]))
    assert panels["context"].get("margin") is None  # this rendering did not judge the holdings
    me = Session.objects.get(id="demo").participants.get(user=users["alice"])
    assert f'data-testid="preview-{quote.id}"' in render_board(panels, me)


# ---------------------------------------------------------------- the log


def test_liquidation_and_deleveraging_read_plainly_in_the_log():
    names = {7: "Alice", 8: "Mm"}
    liquidated = summarize(
        "PositionLiquidated",
        {"user_id": 7, "W": "-120.5", "requirement": "300", "margin_band": "0.15", "method": "deleverage"},
        names,
    )
    assert liquidated == (
        "Alice liquidated: W -120.50 is below zero (requirement 300.00, band ±15%); "
        "its shorts are deleveraged at the oracle's price"
    )
    moved = summarize(
        "AutoDeleveraged",
        {"user_id": 7, "moves": [{"from": 8, "leg": "AAPL", "units": 5_000_000}], "bankrupt": False},
        names,
    )
    assert moved == "Alice's shorts closed at the oracle's price: 5 AAPL from Mm; paid with its longs"


# ---------------------------------------------------------------- the batch order form


def test_the_order_form_says_what_the_order_would_do_to_w_as_it_is_typed(users):
    shorting(users, mechanism="batch", margin_band="0.5", initial_margin="0.5")
    client = client_for(users["alice"])
    url = reverse("markets:order_preview", args=["demo"])
    page = _floor(users, "alice")
    assert 'id="order-preview"' in page and url in page
    fits = client.get(url, {"quantity": "20", "give_leg": "AAPL", "get_leg": "ORCL", "limit_rate": "5"})
    assert "If it fills whole at its limit: W " in _text(fits.content.decode()) and "✓" in fits.content.decode()
    refused = _text(
        client.get(url, {"quantity": "40", "give_leg": "AAPL", "get_leg": "ORCL", "limit_rate": "1,2"}).content.decode()
    )
    assert "✗ Would be refused (margin): this would leave you with W -295.00" in refused.replace(",", "")
    with pytest.raises(Exception) as placed:
        services.place_order(users["alice"], "demo", "AAPL", "ORCL", "40", "1.2")
    assert placed.value.code == "margin"
    half_typed = client.get(url, {"quantity": "", "give_leg": "AAPL", "get_leg": "ORCL", "limit_rate": "5"})
    assert half_typed.status_code == 200 and _text(half_typed.content.decode()).strip() == ""


# ---------------------------------------------------------------- the monitor


def test_the_monitor_shows_everyones_margin_and_reduce_only_stands_out(users):
    shorting(users, initial_margin="0.5")
    trade(users, "alice", "mm", "AAPL", "ORCL", "40", "1.2")
    tick("demo", {"AAPL": 170})
    client = client_for(users["org"])
    page = client.get(reverse("markets:monitor_live", args=["demo"])).content.decode()
    row = re.search(r'<tr data-user="alice".*?</tr>', page, re.S).group(0)
    assert 'class="m-reduce_only"' in row
    assert re.search(r'data-testid="margin-w-alice"[^>]*>391.00<', row)
    assert re.search(r'data-testid="margin-req-alice"[^>]*>1,275.00<', row)
    assert "Reduce-only" in row and '15 <span class="sub">AAPL (75%)</span>' in row
    assert 'class="m-ok"' in re.search(r'<tr data-user="bob".*?</tr>', page, re.S).group(0)
    assert 'data-sort="w"' in page and 'data-sort="mstatus"' in page


def test_a_monitor_without_shorting_has_no_margin_columns(users):
    create_demo(users)
    page = client_for(users["org"]).get(reverse("markets:monitor_live", args=["demo"])).content.decode()
    assert 'data-sort="w"' not in page and "margin-w-" not in page


def test_a_liquidation_shows_on_the_floor_in_words_and_on_the_monitor(users):
    shorting(users)
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")  # alice: -20 AAPL, 84 ORCL
    tick("demo", {"AAPL": 250})
    services.liquidate_due_sessions()
    page = _floor(users, "alice")
    panel = re.search(r'data-testid="my-margin".*?</p>', page, re.S).group(0)
    assert 'data-status="liquidated"' in panel
    assert "Liquidated earlier in this session; W is now" in _text(panel)
    events = html.unescape(_text(re.search(r'data-testid="events".*?</table>', page, re.S).group(0)))
    assert re.search(r"alice liquidated: W -[\d,]+\.\d\d is below zero \(requirement [\d,]+\.\d\d, band ±15%\)", events)
    assert re.search(r"alice's shorts closed at the oracle's price: 20 AAPL from \w+", events)
    monitor = client_for(users["org"]).get(reverse("markets:monitor_live", args=["demo"])).content.decode()
    assert 'class="m-liquidated"' in re.search(r'<tr data-user="alice".*?>', monitor).group(0)
