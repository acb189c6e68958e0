"""The organiser's admin: pages load, the ledger is read-only there too, and every change the admin
offers (create a session, add a participant, open, settle) goes through the services."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import services
from markets.models import Participant, Session, Settlement
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 1, 15, 0, tzinfo=dt.UTC)
LEGS = ["AAPL", "NVDA", "META", "ORCL"]


@pytest.fixture
def organiser(users):
    org = users["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    return org


@pytest.fixture
def admin_client(client, organiser):
    client.force_login(organiser)
    return client


@pytest.fixture
def traded(users, organiser):
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    return services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.62").id)


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("admin:markets_session_changelist", "demo"),
        ("admin:markets_participant_changelist", "alice"),
        ("admin:ledger_event_changelist", "TradeExecuted"),
        ("admin:markets_trade_changelist", "6.200000"),
    ],
)
def test_changelists_load(admin_client, traded, name, expected):
    response = admin_client.get(reverse(name))
    assert response.status_code == 200
    assert expected in response.content.decode()


def test_session_and_trade_pages_are_read_only(admin_client, traded):
    page = admin_client.get(reverse("admin:markets_session_change", args=["demo"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html
    assert "21.200000" in html  # alice's NVDA after the trade, from the holdings inline
    assert admin_client.get(reverse("admin:markets_session_delete", args=["demo"])).status_code == 403
    assert admin_client.get(reverse("admin:markets_trade_add")).status_code == 403
    trade_page = admin_client.get(reverse("admin:markets_trade_change", args=[traded.id]))
    assert trade_page.status_code == 200
    assert 'name="_save"' not in trade_page.content.decode()


def test_event_admin_cannot_add_change_or_delete(admin_client, traded):
    event = Event.objects.get(type="TradeExecuted")
    assert admin_client.get(reverse("admin:ledger_event_add")).status_code == 403
    assert admin_client.post(reverse("admin:ledger_event_add"), {"stream": "x"}).status_code == 403
    assert admin_client.get(reverse("admin:ledger_event_delete", args=[event.seq])).status_code == 403
    assert admin_client.post(reverse("admin:ledger_event_delete", args=[event.seq]), {"post": "yes"}).status_code == 403

    page = admin_client.get(reverse("admin:ledger_event_change", args=[event.seq]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and "<textarea" not in html
    assert 'class="readonly"' in html
    assert event.hash in html
    changed = admin_client.post(
        reverse("admin:ledger_event_change", args=[event.seq]), {"type": "Edited", "payload": "{}"}
    )
    assert changed.status_code == 403
    event.refresh_from_db()
    assert event.type == "TradeExecuted"
    # no bulk delete action either
    changelist = admin_client.get(reverse("admin:ledger_event_changelist")).content.decode()
    assert "delete_selected" not in changelist


def _session_form(**overrides) -> dict:
    return {
        "session_id": "friday",
        "title": "Friday close",
        "legs": "AAPL, NVDA, META, ORCL",
        "q": "100, 60, 80, 120",
        "start_mode": "immediate",
        "end_mode": "manual",
        "allocation_mode": "pro_rata",
        "fixing_rule": "last",
        **overrides,
    }


def test_session_add_form_creates_the_session_through_the_service(admin_client, organiser):
    form = admin_client.get(reverse("admin:markets_session_add"))
    assert form.status_code == 200
    assert "Create a session" in form.content.decode()

    response = admin_client.post(reverse("admin:markets_session_add"), _session_form())

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:markets_session_change", args=["friday"])
    session = Session.objects.get(id="friday")
    assert (session.legs, session.q) == (LEGS, [100_000_000, 60_000_000, 80_000_000, 120_000_000])
    created = Event.objects.get(stream="session-friday", type="SessionCreated")
    assert created.data["created_by_id"] == organiser.pk and created.data["title"] == "Friday close"
    assert Participant.objects.get(session=session, user=organiser).role == Participant.Role.ORGANISER
    assert ("info", "Session friday created; you are its organiser.") in messages_of(response)


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"legs": "AAPL, aapl, META, ORCL"}, "Legs must be distinct (ignoring case): AAPL repeated"),
        ({"legs": "AAPL, NV$DA, META, ORCL"}, "is not a valid leg name"),
        ({"legs": "AAPL"}, "A session needs 2 to 32 legs, not 1"),
        ({"q": "100, 60, 80"}, "The basket q has 3 entries for 4 legs"),
        ({"q": "100, 60, 80, -1"}, "q for ORCL must not be negative"),
        ({"q": "100, 60, 80, lots"}, "q for ORCL must be a number"),
        ({"end_mode": "timed"}, "A timed session needs t2"),
    ],
)
def test_session_add_form_shows_service_errors_inline_and_writes_nothing(admin_client, organiser, overrides, error):
    events = Event.objects.count()
    response = admin_client.post(reverse("admin:markets_session_add"), _session_form(**overrides))
    assert response.status_code == 200
    html = response.content.decode().replace("&#x27;", "'")
    assert re.search(r'<ul class="errorlist[^"]*"[^>]*><li>[^<]*' + re.escape(error), html), "error not shown in a list"
    assert Event.objects.count() == events
    assert not Session.objects.filter(id="friday").exists()


def test_session_add_form_refuses_a_taken_id(admin_client, users, organiser):
    create_demo(users, open_it=False)
    events = Event.objects.count()
    response = admin_client.post(reverse("admin:markets_session_add"), _session_form(session_id="demo"))
    assert response.status_code == 200
    assert "Session demo already exists" in response.content.decode()
    assert Event.objects.count() == events


def test_participant_add_form_joins_a_user_through_the_service(admin_client, users):
    create_demo(users, open_it=False)
    response = admin_client.post(
        reverse("admin:markets_participant_add"), {"session": "demo", "username": "eve", "role": "maker"}
    )
    assert response.status_code == 302
    assert Participant.objects.get(session_id="demo", username="eve").role == "maker"
    assert Event.objects.filter(stream="session-demo", type="ParticipantJoined").count() == 6

    events = Event.objects.count()
    again = admin_client.post(
        reverse("admin:markets_participant_add"), {"session": "demo", "username": "eve", "role": "trader"}
    )
    assert again.status_code == 200
    assert "eve has already joined demo" in again.content.decode()
    assert Event.objects.count() == events


def _action(admin_client, action: str, *ids: str):
    return admin_client.post(
        reverse("admin:markets_session_changelist"),
        {"action": action, "_selected_action": list(ids)},
        follow=True,
    )


def test_open_action_opens_through_the_service(admin_client, users):
    create_demo(users, "a", open_it=False)
    create_demo(users, "b")
    response = _action(admin_client, "open_sessions", "a", "b")
    assert response.status_code == 200
    got = messages_of(response)
    assert ("success", "a: opened") in got
    assert ("error", "b: Session b is already open") in got
    assert Session.objects.get(id="a").status == Session.Status.OPEN


def test_settle_action_settles_with_ticks_and_reports_missing_prices(admin_client, users):
    clock.set_time(T0)
    create_demo(users, "priced")
    create_demo(users, "unpriced")
    for k, leg in enumerate(LEGS):
        Tick.objects.create(
            session_id="priced", symbol=leg, at=T0 - dt.timedelta(seconds=5), price=(k + 1) * 10**6, source="manual"
        )
    Tick.objects.create(session_id="unpriced", symbol="AAPL", at=T0, price=10**6, source="manual")

    response = _action(admin_client, "settle_sessions", "priced", "unpriced")

    assert response.status_code == 200
    got = messages_of(response)
    assert ("success", "priced: settled") in got
    assert (
        "error",
        "unpriced: Cannot settle unpriced: no price for NVDA, META, ORCL at or before 2030-06-01 15:00:00 UTC",
    ) in got
    assert Session.objects.get(id="priced").status == Session.Status.SETTLED
    # q.S = 100*1 + 60*2 + 80*3 + 120*4 = 940
    assert Settlement.objects.get(session_id="priced").total == "940.000000000000"
    assert Session.objects.get(id="unpriced").status == Session.Status.OPEN
    assert not Event.objects.filter(stream="session-unpriced", type="SessionSettled").exists()


def test_admin_actions_need_the_sessions_organiser(client, users):
    """A staff user who is not the session's organiser cannot settle it from the admin."""
    create_demo(users)
    staff = users["bob"]
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = _action(client, "settle_sessions", "demo")
    assert response.status_code == 200
    assert ("error", "demo: Only the session's organiser can do this") in messages_of(response)
    assert Session.objects.get(id="demo").status == Session.Status.OPEN
