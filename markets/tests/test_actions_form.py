"""The monitor's "Schedule an action" form (#33), as the organiser uses it: a split scheduled from the page is
listed under Corporate actions (htmx and a plain POST), each refusal of the service is said beside the form
with what was typed kept and nothing written, the parameters of another kind left typed in hidden fields are
not sent, a cut typed as a time alone is today's in UTC, and who is not the organiser is answered 403; last,
the form in Chromium."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from conftest import make_user
from ledger import clock
from ledger.models import Event
from markets.forms_actions import read_cut
from markets.models import CorporateAction
from markets.tests.test_browser import CHROMIUM, browser, server, shot, signed_in_page  # noqa: F401 (fixtures)

HX = {"HTTP_HX_REQUEST": "true"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(session_id: str = "demo") -> str:
    return reverse("markets:monitor_action", args=[session_id])


def ahead(hours: int = 1) -> str:
    return (clock.now() + dt.timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


def written() -> tuple[int, int]:
    return Event.objects.count(), CorporateAction.objects.count()


@pytest.mark.django_db
def test_the_organiser_sees_the_form_and_a_split_scheduled_with_htmx_is_listed(users, demo):
    org = client_for(users["org"])
    page = org.get(reverse("markets:monitor", args=["demo"])).content.decode()
    assert 'data-testid="schedule-action"' in page and "No action scheduled yet." in page
    assert '<option value="NVDA">NVDA</option>' in page

    cut = ahead()
    response = org.post(url(), {"kind": "split", "leg": "NVDA", "cut": cut, "ratio": "10/1"}, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    action = CorporateAction.objects.get(session_id="demo")
    assert (action.number, action.kind, action.leg, action.params) == (1, "split", "NVDA", {"ratio": "10/1"})
    assert action.effective_at == dt.datetime.fromisoformat(cut).replace(tzinfo=dt.UTC)
    assert 'data-testid="action-done"' in body and "Action 1 scheduled: split of NVDA" in body
    # The list arrives with it (the live part, out of band), and the form comes back empty for the next one.
    assert 'id="monitor-live"' in body and 'hx-swap-oob="true"' in body
    assert 'data-testid="monitor-action-1" data-status="scheduled"' in body
    assert 'value="10/1"' not in body


@pytest.mark.django_db
def test_a_plain_post_without_scripts_schedules_and_comes_back_to_the_monitor(users, demo):
    org = client_for(users["org"])
    response = org.post(url(), {"kind": "dividend", "leg": "AAPL", "cut": ahead(2), "amount": "0.25"}, follow=True)
    assert response.redirect_chain == [(reverse("markets:monitor", args=["demo"]), 302)]
    page = response.content.decode()
    assert "Action 1 scheduled" in page and 'data-testid="monitor-action-1"' in page
    assert CorporateAction.objects.get(session_id="demo").params == {"amount": "0.250000"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ({"kind": "split", "leg": "NVDA", "ratio": "0"}, "The split's ratio must be from 1/1000 to 1000"),
        ({"kind": "split", "leg": "NVDA", "ratio": "1/1"}, "A split's ratio is not 1"),
        ({"kind": "split", "leg": "NVDA", "ratio": ""}, "The split's ratio must be a fraction such as 10/1"),
        ({"kind": "split", "leg": "TSLA", "ratio": "10/1"}, "TSLA"),
        ({"kind": "dividend", "leg": "AAPL", "amount": "abc"}, "Dividend amount"),
        ({"kind": "merger", "leg": "NVDA", "into": "NVDA", "ratio": "2"}, "A leg merges into another leg"),
        ({"kind": "merger", "leg": "NVDA"}, "A merger takes either into (a leg, with ratio) or cash per unit"),
        ({"kind": "merger", "leg": "NVDA", "into": "ORCL", "ratio": "2", "cash": "120"}, "either into"),
        ({"kind": "rename", "leg": "META", "to": "AAPL"}, "AAPL"),
        ({"kind": "spinoff", "leg": "META"}, "Unknown action 'spinoff'"),
        ({"kind": "split", "leg": "NVDA", "ratio": "10/1", "cut": "2020-01-01 10:00"}, "must be an instant after now"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_each_refusal_is_said_beside_the_form_and_nothing_is_written(users, demo, typed, said, htmx):
    org = client_for(users["org"])
    before = written()
    response = org.post(url(), {"cut": ahead()} | typed, **(HX if htmx else {}))
    body = response.content.decode()
    assert response.status_code == 200
    assert written() == before
    error = body.split('data-testid="action-error">', 1)[1].split("</p>", 1)[0]
    assert said.replace("'", "&#x27;") in error
    assert f'value="{typed.get("ratio")}"' in body if typed.get("ratio") else True  # what was typed stays
    if not htmx:  # the whole monitor, the form where it stands
        assert 'data-testid="monitor-invariants"' in body


@pytest.mark.django_db
@pytest.mark.parametrize("cut", ["tomorrow", "2030-13-40 10:00", "25:00", "10:00 PST", "", "2030-06-10"])
def test_a_cut_the_form_cannot_read_is_said_beside_the_cut(users, demo, cut):
    org = client_for(users["org"])
    before = written()
    body = org.post(url(), {"kind": "split", "leg": "NVDA", "cut": cut, "ratio": "10/1"}, **HX).content.decode()
    assert 'data-testid="action-cut-error"' in body or "This field is required" in body
    assert written() == before


def test_the_cut_is_read_in_utc_and_a_time_alone_is_today():
    now = dt.datetime(2030, 6, 10, 9, 0, tzinfo=dt.UTC)
    utc = dt.UTC
    assert read_cut("2030-06-10 13:30", now) == dt.datetime(2030, 6, 10, 13, 30, tzinfo=utc)
    assert read_cut(" 2030-06-10T13:30:15 UTC ", now) == dt.datetime(2030, 6, 10, 13, 30, 15, tzinfo=utc)
    assert read_cut("2030-06-10 15:30+02:00", now) == dt.datetime(2030, 6, 10, 13, 30, tzinfo=utc)
    assert read_cut("13:30:00", now) == dt.datetime(2030, 6, 10, 13, 30, tzinfo=utc)
    assert read_cut("13:30", now.astimezone(dt.timezone(dt.timedelta(hours=-11)))).date() == dt.date(2030, 6, 10)


@pytest.mark.django_db
def test_only_the_kinds_own_parameters_are_sent(users, demo):
    """A dividend's amount left typed (hidden) under a split, or a ratio under a cash merger, says nothing."""
    org = client_for(users["org"])
    typed = {"kind": "split", "leg": "NVDA", "cut": ahead(), "ratio": "1/10", "amount": "abc", "to": "X"}
    assert 'data-testid="action-done"' in org.post(url(), typed, **HX).content.decode()
    typed = {"kind": "merger", "leg": "ORCL", "cut": ahead(), "ratio": "7", "cash": "120.5", "into": ""}
    assert 'data-testid="action-done"' in org.post(url(), typed, **HX).content.decode()
    assert [a.params for a in CorporateAction.objects.order_by("number")] == [{"ratio": "1/10"}, {"cash": "120.500000"}]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["alice", "eve", "staff"])
def test_who_is_not_the_organiser_is_refused_403_and_nothing_is_written(users, demo, who):
    user = users.get(who) or make_user("staff")
    if who == "staff":  # may open the monitor, may not act on the session
        get_user_model().objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    client = client_for(get_user_model().objects.get(pk=user.pk))
    before = written()
    typed = {"kind": "split", "leg": "NVDA", "cut": ahead(), "ratio": "10/1"}
    for extra in (HX, {}):
        response = client.post(url(), typed, **extra)
        assert response.status_code == 403
        assert written() == before
    if who == "staff":
        page = client.get(reverse("markets:monitor", args=["demo"])).content.decode()
        assert response.status_code == 403 and 'data-testid="monitor-invariants"' in page
        assert 'data-testid="schedule-action"' not in page  # the form is the organiser's only


@pytest.mark.django_db
def test_no_form_once_the_session_is_settled(users, demo):
    from markets import services
    from markets.tests.test_browser import add_ticks

    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    services.settle_session(users["org"], "demo")
    page = client_for(users["org"]).get(reverse("markets:monitor", args=["demo"])).content.decode()
    assert 'data-testid="schedule-action"' not in page
    response = client_for(users["org"]).post(
        url(), {"kind": "split", "leg": "NVDA", "cut": ahead(), "ratio": "2"}, **HX
    )
    assert "actions are scheduled before it ends" in response.content.decode()
    assert not CorporateAction.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed")
def test_the_organiser_schedules_a_10_for_1_split_in_chromium_and_sees_it_listed(browser, server, users, demo):  # noqa: F811
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/sessions/demo/monitor")
    form = org.locator("[data-testid=schedule-action]")
    assert form.locator("input[name=ratio]").is_visible() and not form.locator("input[name=amount]").is_visible()
    form.locator("select[name=kind]").select_option("dividend")
    assert form.locator("input[name=amount]").is_visible() and not form.locator("input[name=ratio]").is_visible()
    form.locator("select[name=kind]").select_option("split")
    form.locator("select[name=leg]").select_option("NVDA")
    cut = ahead(3)
    form.locator("input[name=cut]").fill(cut)
    form.locator("input[name=ratio]").fill("0")
    form.locator("[data-testid=schedule-action-button]").click()
    org.locator("[data-testid=action-error]").wait_for(timeout=10_000)
    assert not CorporateAction.objects.exists()
    assert org.locator("input[name=ratio]").input_value() == "0"  # kept as typed
    shot(org, "monitor-schedule-action-refused")

    org.locator("input[name=ratio]").fill("10/1")
    org.locator("[data-testid=schedule-action-button]").click()
    row = org.locator("[data-testid=monitor-action-1][data-status=scheduled]")
    row.wait_for(timeout=10_000)
    text = row.inner_text()
    assert "split" in text and "NVDA" in text and f"{cut}:00" in text and "ratio 10/1" in text
    assert org.locator("[data-testid=action-done]").inner_text().startswith("Action 1 scheduled")
    assert org.locator("input[name=cut]").input_value() == ""  # ready for the next one
    shot(org, "monitor-schedule-action")

    # What is being typed stays while the live part refreshes around it (every 10 s, and on every push).
    org.locator("select[name=kind]").select_option("rename")
    org.locator("input[name=to]").fill("NVDX")
    refreshes = int(org.locator(".monitor").get_attribute("data-refreshes") or "0")
    org.wait_for_function(f"+document.querySelector('.monitor').dataset.refreshes > {refreshes}", timeout=15_000)
    assert org.locator("input[name=to]").input_value() == "NVDX"
    assert org.locator("[data-testid=action-done]").is_visible()
    assert org.locator("[data-testid=monitor-action-1]").is_visible()
