"""What the floor says where a person acted: an accept says what it traded where its RFQ was, a refusal
is marked to stay (floor.js keeps it while pushes redraw the board), and an organiser's floor says Paused
and offers Resume (and Pause) in place. The browser half is in test_browser.py."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from ledger.models import Event
from markets import services
from markets.models import Session
from markets.tests.test_views import HX, client_for, priced  # noqa: F401 (a fixture)


def test_an_accept_says_what_was_traded_where_the_rfq_was(users, priced):  # noqa: F811
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "5")
    quote = services.provide_quote(users["mm"], rfq.id, "1.6952")
    board = client_for(users["alice"]).post(reverse("markets:quote_accept", args=[quote.id]), **HX).content.decode()
    notice = re.search(r'<p class="notice"[^>]*data-replaces="rfq-(\d+)"[^>]*>([^<]*)</p>', board)
    assert notice, board
    assert notice.group(1) == str(rfq.id)
    assert notice.group(2).startswith("Traded: gave 5 AAPL, got 8.476 NVDA (trade ")
    assert "with mm, rate 1.6952)" in notice.group(2)
    # Without scripts the same words come back as the page's message.
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "2")
    page = client_for(users["alice"]).post(reverse("markets:quote_accept", args=[quote.id]), follow=True)
    assert "Traded: gave 1 AAPL, got 2 NVDA" in page.content.decode()


def test_refusals_on_the_board_are_marked_to_stay_where_they_were_said(users, priced):  # noqa: F811
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.5")
    mm = client_for(users["mm"])
    said = mm.post(reverse("markets:quote_create", args=[rfq.id]), {"rate": "0.6", "ttl": "0"}, **HX).content.decode()
    assert re.search(rf'data-kept data-in="rfq-{rfq.id}" data-context="RFQ {rfq.id}">[^<]*seconds', said), said
    taker = client_for(users["alice"])
    said = taker.post(reverse("markets:rfq_create", args=["demo"]), {"give_leg": "AAPL", "get_leg": "AAPL"}, **HX)
    assert 'data-kept data-after="rfq-form"' in said.content.decode()
    services.withdraw_quote(users["mm"], quote.id)
    said = taker.post(reverse("markets:quote_accept", args=[quote.id]), **HX).content.decode()
    assert re.search(r'data-kept data-in="board">Quote \d+ is withdrawn', said), said


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_only_the_organiser_pauses_and_resumes_from_the_floor_and_others_write_nothing(users, priced, action):  # noqa: F811
    if action == "resume":
        services.pause_trading(users["org"], "demo")
    before = Event.objects.count()
    refused = client_for(users["alice"]).post(reverse(f"markets:{action}", args=["demo"]), **HX)
    assert refused.status_code == 403
    assert "organiser" in refused.content.decode()
    assert Event.objects.count() == before
    done = client_for(users["org"]).post(reverse(f"markets:{action}", args=["demo"]), **HX)
    assert done.status_code == 204  # the floor changes with the push of its event, as every floor does
    assert (Session.objects.get(id="demo").paused_at is not None) == (action == "pause")


def test_a_paused_floor_says_paused_and_the_organisers_offers_resume(users, priced):  # noqa: F811
    url = reverse("markets:floor", args=["demo"])
    org, alice = client_for(users["org"]), client_for(users["alice"])
    page = org.get(url).content.decode()
    assert re.search(r'data-testid="session-status">Open<', page)
    assert 'data-testid="floor-pause"' in page and "data-organiser" in page
    services.pause_trading(users["org"], "demo", "a question from the floor")
    for client in (org, alice):
        page = client.get(url).content.decode()
        assert re.search(r'class="badge open paused" data-testid="session-status">Paused<', page)
        assert 'data-testid="floor-resume"' in page  # in the shared panel, shown by the organiser's page only
        assert 'data-testid="floor-pause"' not in page
    assert "data-organiser" in org.get(url).content.decode()
    assert "data-organiser" not in alice.get(url).content.decode()
    services.settle_session(users["org"], "demo")
    page = alice.get(url).content.decode()
    assert re.search(r'data-testid="session-status">Settled<', page)
    assert 'data-testid="floor-resume"' not in page
