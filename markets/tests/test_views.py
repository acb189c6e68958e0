"""The floor's pages and actions through Django's test client: full pages, htmx partials, inline
errors, permissions enforced by the services, CSRF with htmx, demo-mode switching."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from ledger import clock
from ledger.models import Event
from markets import projections, services
from markets.models import RFQ, Quote, Trade
from oracle.models import Tick

HX = {"HTTP_HX_REQUEST": "true"}


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def add_ticks(session_id: str, prices: dict[str, str]) -> None:
    now = clock.now()
    for symbol, price in prices.items():
        Tick.objects.create(
            session_id=session_id, symbol=symbol, at=now, price=int(float(price) * 1_000_000), source="test"
        )


def written(session_id: str = "demo") -> tuple[int, dict]:
    return Event.objects.count(), projections.snapshot(session_id)


@pytest.fixture
def priced(demo):
    add_ticks("demo", {"AAPL": "190.10", "NVDA": "480.20", "META": "350.00", "ORCL": "104.30"})
    return demo


def test_pages_need_sign_in(demo):
    for url in (reverse("markets:session_list"), reverse("markets:floor", args=["demo"]), reverse("markets:portfolio")):
        response = Client().get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_session_list_shows_status_basket_participants_and_pool_value(users, priced):
    page = client_for(users["alice"]).get(reverse("markets:session_list")).content.decode()
    assert "demo" in page and "Open" in page
    assert "100 / 60 / 80 / 120" in page
    # q.S = 100*190.1 + 60*480.2 + 80*350 + 120*104.3 = 88,338.00
    assert "88,338.00" in page
    assert "Create a session" not in page  # alice is no organiser


CREATE = {
    "session_id": "x1",
    "legs": "AAPL, NVDA",
    "q": "10, 20",
    "start_mode": "immediate",
    "end_mode": "manual",
    "allocation_mode": "pro_rata",
    "fixing_rule": "last",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"legs": "AAPL, AAPL"}, "Legs must be distinct (ignoring case): AAPL repeated"),
        ({"legs": "AAPL"}, "A session needs 2 to 32 legs, not 1"),
        ({"q": "10"}, "The basket q has 1 entries for 2 legs"),
        ({"q": "10, -1"}, "q for NVDA must not be negative"),
        ({"end_mode": "timed"}, "A timed session needs t2"),
        ({"session_id": "has space"}, "Enter a valid"),
    ],
)
def test_create_session_errors_are_inline_and_write_nothing(users, change, message):
    response = client_for(users["org"]).post(reverse("markets:session_list"), CREATE | change, **HX)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Event.objects.count() == 0


def test_organiser_creates_session_from_form(users):
    client = client_for(users["org"])
    ok = client.post(reverse("markets:session_list"), CREATE, **HX)
    assert ok.status_code == 200
    assert ok["HX-Redirect"] == reverse("markets:floor", args=["x1"])
    assert Event.objects.filter(stream="session-x1", type="SessionCreated").exists()


def test_floor_full_page_shows_every_panel_with_exact_numbers(users, priced):
    page = client_for(users["alice"]).get(reverse("markets:floor", args=["demo"])).content.decode()
    for panel in ('id="legs"', 'id="holdings"', 'id="pool"', 'id="board"', 'id="blotter"', 'id="events"'):
        assert panel in page
    assert 'ws-connect="/ws/sessions/demo/?at=' in page
    assert "25.000000" in page  # 100 AAPL split between alice, bob, mm, mm2
    assert "1 Conservation" in page and "4 Settlement sum" in page
    assert 'tr[data-user="alice"]' in page  # the signed-in participant's row is highlighted
    assert "190.10" in page


def test_rfq_quote_accept_through_htmx_posts(users, priced):
    alice, mm = client_for(users["alice"]), client_for(users["mm"])
    response = alice.post(
        reverse("markets:rfq_create", args=["demo"]), {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "10"}, **HX
    )
    assert response.status_code == 200
    board = response.content.decode()
    assert board.lstrip().startswith('<section id="board"')
    assert 'alice</bdi></strong> gives <strong class="num">10</strong> AAPL for NVDA' in board
    rfq = RFQ.objects.get()
    response = mm.post(reverse("markets:quote_create", args=[rfq.id]), {"rate": "0.62", "ttl": "60"}, **HX)
    assert "rate 0.62" in response.content.decode()
    quote = Quote.objects.get()
    response = alice.post(reverse("markets:quote_accept", args=[quote.id]), **HX)
    assert response.status_code == 200
    trade = Trade.objects.get()
    assert (trade.give_qty, trade.get_qty) == (10_000_000, 6_200_000)
    floor = alice.get(reverse("markets:floor", args=["demo"])).content.decode()
    assert "21.200000" in floor  # alice's NVDA: 15 + 6.2


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("abc", "Quantity must be a number"),
        ("-5", "Quantity must not be negative"),
        ("0", "Quantity must be greater than zero"),
        ("1e400", "Quantity is too large"),
        ("NaN", "Quantity must be a finite number"),
        ("10.1234567", "more than 6 decimal places"),
        ("1000", "Insufficient inventory: you hold 25.000000 AAPL"),
    ],
)
def test_bad_rfq_input_is_shown_inline_and_writes_nothing(users, priced, quantity, message):
    before = written()
    response = client_for(users["alice"]).post(
        reverse("markets:rfq_create", args=["demo"]),
        {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": quantity},
        **HX,
    )
    assert response.status_code == 200
    board = response.content.decode()
    assert 'role="alert"' in board and message in board
    assert written() == before


def test_forged_posts_by_the_wrong_user_are_refused_and_write_nothing(users, priced):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    before = written()
    bob = client_for(users["bob"])
    cases = [
        (reverse("markets:quote_accept", args=[quote.id]), {}, "Only the RFQ's taker can accept"),
        (reverse("markets:rfq_cancel", args=[rfq.id]), {}, "Only the RFQ's taker can cancel"),
        (reverse("markets:quote_withdraw", args=[quote.id]), {}, "Only the maker who gave a quote"),
        (reverse("markets:quote_create", args=[rfq.id]), {"rate": "0.7"}, "Only market makers can quote"),
        (reverse("markets:settle", args=["demo"]), {}, "Only the session's organiser"),
    ]
    for url, data, message in cases:
        response = bob.post(url, data, **HX)
        assert response.status_code == 200, url
        assert message in html.unescape(response.content.decode()), url
    assert written() == before
    mm_on_own = client_for(users["mm"])
    own = services.request_rfq(users["mm"], "demo", "META", "ORCL", "1")
    before = written()
    response = mm_on_own.post(reverse("markets:quote_create", args=[own.id]), {"rate": "1"}, **HX)
    assert "You cannot quote on your own RFQ" in html.unescape(response.content.decode())
    assert written() == before


def test_expired_quote_cannot_be_accepted(users, priced):
    start = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
    clock.set_time(start)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62", ttl_seconds=5)
    clock.advance(6)
    before = written()
    response = client_for(users["alice"]).post(reverse("markets:quote_accept", args=[quote.id]), **HX)
    assert "expired" in response.content.decode()
    assert written() == before


def test_non_htmx_post_redirects_with_the_message(users, priced):
    response = client_for(users["alice"]).post(
        reverse("markets:rfq_create", args=["demo"]),
        {"give_leg": "AAPL", "get_leg": "AAPL", "quantity": "1"},
        follow=True,
    )
    assert response.status_code == 200
    assert "The give leg and the get leg must differ" in response.content.decode()


def test_csrf_is_enforced_and_works_with_the_htmx_header(users, priced):
    client = client_for(users["alice"], enforce_csrf_checks=True)
    url = reverse("markets:rfq_create", args=["demo"])
    data = {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1"}
    assert client.post(url, data, **HX).status_code == 403
    assert not RFQ.objects.exists()
    page = client.get(reverse("markets:floor", args=["demo"]))
    token = page.context["csrf_token"]
    assert f'"X-CSRFToken": "{token}"' in page.content.decode()  # hx-headers on <body>
    assert client.post(url, data, HTTP_X_CSRFTOKEN=str(token), **HX).status_code == 200
    assert RFQ.objects.count() == 1


def test_organiser_opens_and_settles_with_preview(users):
    from conftest import create_demo

    create_demo(users, "s2", open_it=False)
    org = client_for(users["org"])
    floor = org.get(reverse("markets:floor", args=["s2"])).content.decode()
    assert "Open session &amp; allocate" in floor
    assert org.post(reverse("markets:open", args=["s2"]), **HX)["HX-Redirect"] == "/sessions/s2/"
    preview = org.get(reverse("markets:settle", args=["s2"]), **HX).content.decode()
    assert "Cannot settle yet: no price for AAPL, NVDA, META, ORCL" in preview
    add_ticks("s2", {"AAPL": "1", "NVDA": "2", "META": "3", "ORCL": "4"})
    preview = org.get(reverse("markets:settle", args=["s2"]), **HX).content.decode()
    assert "Confirm settlement" in preview and "2.000000" in preview
    assert org.post(reverse("markets:settle", args=["s2"]), **HX).status_code == 200
    floor = org.get(reverse("markets:floor", args=["s2"])).content.decode()
    assert "Settled" in floor and "✓ exact" in floor
    # 100*1 + 60*2 + 80*3 + 120*4 = 940
    assert "940.00" in floor


def test_join_from_the_floor(users):
    from conftest import create_demo

    create_demo(users, "s3", open_it=False)
    eve = client_for(users["eve"])
    assert "Join this session" in eve.get(reverse("markets:floor", args=["s3"])).content.decode()
    assert eve.post(reverse("markets:join", args=["s3"]), {"role": "trader"}, **HX).status_code == 200
    again = eve.post(reverse("markets:join", args=["s3"]), {"role": "trader"}, **HX).content.decode()
    assert "eve has already joined s3" in again


def test_portfolio_shows_holdings_values_and_own_trades(users, priced):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    services.accept_quote(users["alice"], quote.id)
    page = client_for(users["alice"]).get(reverse("markets:portfolio")).content.decode()
    assert "15.000000" in page and "21.200000" in page  # 25 - 10 AAPL, 15 + 6.2 NVDA
    assert "Your trades" in page and "taker" in page


def test_unknown_ids_are_404_not_500(users, demo):
    client = client_for(users["alice"])
    assert client.get(reverse("markets:floor", args=["nope"])).status_code == 404
    assert client.post(reverse("markets:quote_accept", args=[999]), **HX).status_code == 404
    assert client.post(reverse("markets:quote_create", args=[999]), {"rate": "1"}, **HX).status_code == 404


def test_settlement_uses_the_fixing_the_organiser_was_shown(users):
    from conftest import create_demo

    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    clock.set_time(start)
    create_demo(users, "s4")
    clock.advance(10)
    add_ticks("s4", {"AAPL": "1", "NVDA": "2", "META": "3", "ORCL": "4"})
    org = client_for(users["org"])
    preview = org.get(reverse("markets:settle", args=["s4"]), **HX).content.decode()
    shown_at = clock.now().isoformat()
    assert f'"fixing_at": "{shown_at}"' in preview
    clock.advance(5)
    add_ticks("s4", {"AAPL": "9", "NVDA": "9", "META": "9", "ORCL": "9"})  # arrives before the click
    assert org.post(reverse("markets:settle", args=["s4"]), {"fixing_at": shown_at}, **HX).status_code == 200
    settled = Event.objects.get(stream="session-s4", type="SessionSettled").data
    assert settled["prices"] == {"AAPL": 1_000_000, "NVDA": 2_000_000, "META": 3_000_000, "ORCL": 4_000_000}
    assert settled["fixing"]["at"] == shown_at


def test_settlement_refuses_a_fixing_time_in_the_future(users):
    from conftest import create_demo

    create_demo(users, "s5")
    add_ticks("s5", {"AAPL": "1", "NVDA": "2", "META": "3", "ORCL": "4"})
    future = (clock.now() + dt.timedelta(hours=1)).isoformat()
    before = written("s5")
    response = client_for(users["org"]).post(reverse("markets:settle", args=["s5"]), {"fixing_at": future}, **HX)
    assert "The fixing time must lie between the opening and now" in response.content.decode()
    assert written("s5") == before
    response = client_for(users["org"]).post(reverse("markets:settle", args=["s5"]), {"fixing_at": "soon"}, **HX)
    assert "not a valid date" in response.content.decode()


def test_refused_rfq_keeps_what_was_typed(users, priced):
    response = client_for(users["alice"]).post(
        reverse("markets:rfq_create", args=["demo"]), {"give_leg": "META", "get_leg": "ORCL", "quantity": "1000"}, **HX
    )
    board = response.content.decode()
    assert 'value="1000"' in board
    assert "<option selected>META</option>" in board.split('name="give_leg"')[1].split("</select>")[0]
    assert "<option selected>ORCL</option>" in board.split('name="get_leg"')[1].split("</select>")[0]
    ok = client_for(users["alice"]).post(
        reverse("markets:rfq_create", args=["demo"]), {"give_leg": "META", "get_leg": "ORCL", "quantity": "1"}, **HX
    )
    assert 'value=""' in ok.content.decode()  # a request that went through clears the form


def test_invariant_checks_say_pending_before_allocation(users):
    from conftest import create_demo

    create_demo(users, "s6", open_it=False)
    page = client_for(users["org"]).get(reverse("markets:floor", args=["s6"])).content.decode()
    assert page.count('class="pending"') == 4 and "not allocated yet" in page


@pytest.mark.django_db
def test_an_expired_or_unknown_session_cookie_signs_nobody_in(users, demo):
    """Sessions are read by a prepared statement (sessionsite/sessions.py): a live cookie opens the floor,
    an expired one or one the server never issued is asked to sign in, like Django's own engine does."""
    from django.contrib.sessions.models import Session as DjangoSession
    from django.utils import timezone

    client = Client()
    client.force_login(users["alice"])
    assert client.get("/sessions/demo/").status_code == 200
    DjangoSession.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    assert client.get("/sessions/demo/").status_code == 302
    client.cookies[settings.SESSION_COOKIE_NAME] = "x" * 32
    assert client.get("/sessions/demo/").status_code == 302


@pytest.mark.django_db
def test_the_signed_in_user_is_read_as_django_reads_it_and_a_deactivated_one_is_signed_out(users, demo):
    """The user of each request is read by a prepared statement (sessionsite/backends.py): the same user as
    Django's query, signed out while deactivated, and nobody for a session naming a user that is gone or a
    key of the wrong shape."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, get_user_model
    from django.contrib.auth.backends import ModelBackend

    from sessionsite.backends import PreparedModelBackend

    alice = users["alice"]
    ours, django_s = PreparedModelBackend().get_user(alice.pk), ModelBackend().get_user(alice.pk)
    assert {f.attname: getattr(ours, f.attname) for f in get_user_model()._meta.concrete_fields} == {
        f.attname: getattr(django_s, f.attname) for f in get_user_model()._meta.concrete_fields
    }
    assert PreparedModelBackend().get_user("not a key") is None
    assert PreparedModelBackend().get_user(10**9) is None

    client = Client()
    client.force_login(alice)
    session = client.session
    assert session[BACKEND_SESSION_KEY] == settings.SIGN_IN_BACKEND and session[HASH_SESSION_KEY]
    page = client.get("/sessions/demo/")
    assert page.status_code == 200 and 'title="alice">alice</bdi>' in page.content.decode()
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert client.get("/sessions/demo/").status_code == 302
    get_user_model().objects.filter(pk=alice.pk).update(is_active=True)
    assert client.get("/sessions/demo/").status_code == 200
    session = client.session
    session["_auth_user_id"] = str(10**9)  # a user that is not there
    session.save()
    assert client.get("/sessions/demo/").status_code == 302


@pytest.mark.django_db
def test_the_top_bar_links_follow_who_is_signed_in_though_they_are_worked_out_once(users, demo):
    """base.html keeps the assets and the top bar's links in the process's fragment cache: a staff
    organiser, a trader and a visitor who is not signed in, one after another in one process, each see
    their own links and the same assets."""
    from django.core.cache import cache

    cache.clear()
    staff = users["org"]
    staff.is_staff = True
    staff.save()
    pages = {
        "staff": client_for(staff).get(reverse("markets:session_list")).content.decode(),
        "trader": client_for(users["alice"]).get(reverse("markets:session_list")).content.decode(),
        "visitor": Client().get(reverse("login")).content.decode(),
        "staff again": client_for(staff).get(reverse("markets:session_list")).content.decode(),
    }
    admin = f'href="{reverse("admin:index")}"'
    assert [admin in page for page in pages.values()] == [True, False, False, True]
    portfolio = f'href="{reverse("markets:portfolio")}"'
    assert [portfolio in page for page in pages.values()] == [True, True, False, True]
    for page in pages.values():
        assert page.count('href="/static/css/app.css"') == 1 and "htmx-2.min.js" in page
