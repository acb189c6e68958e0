"""Bounded shorting through the JSON API: a session created with its shorting settings (and refused with
their codes), the settings in the session's JSON, `GET /sessions/{id}/margin` with its access rule, and
the `short_limit` and `margin` refusals of RFQ requests, quotes, accepts and orders with their figures,
each writing nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from conftest import create_demo, make_user
from ledger.models import Event
from markets import tokens
from markets.models import Session
from markets.tests.test_api import Api, assert_error
from markets.tests.test_margin import PRICES, tick

pytestmark = pytest.mark.django_db

BODY = {"session_id": "short", "legs": ["AAPL", "NVDA"], "q": [100, 60]}
SETTINGS = {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"}


@pytest.fixture
def people(users):
    auditor = make_user("auditor")
    auditor.user_permissions.add(Permission.objects.get(codename="view_any_session"))
    return {**users, "auditor": auditor}


@pytest.fixture
def api(client, people) -> Api:
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in people.items()})


def shorting_demo(users, **kwargs) -> Session:
    session = create_demo(users, **(SETTINGS | kwargs))
    tick(session.id, PRICES)
    return session


def refused(response, status: int, code: str, before: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    assert Event.objects.count() == before, "a refused request wrote to the ledger"
    return body


def rfq(api: Api, qty, give="AAPL", get="ORCL", who="alice"):
    return api.post("/sessions/demo/rfq", {"give_leg": give, "get_leg": get, "quantity": qty}, who=who)


def quote(api: Api, rfq_id: int, rate, who="mm"):
    return api.post(f"/rfq/{rfq_id}/quote", {"rate": rate}, who=who)


# ---------------------------------------------------------------- the session and its settings


@pytest.mark.parametrize(
    "given",
    [
        {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"},
        {"short_limit": 0.2, "margin_band": 0.15, "initial_margin": 0.05},
        {"short_limit": "0.20", "margin_band": 0.150, "initial_margin": "0.0500"},
    ],
)
def test_a_session_is_created_with_its_shorting_settings(api, given):
    response = api.post("/sessions", BODY | given, who="org")
    assert response.status_code == 201, response.content
    expected = {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"}
    assert {k: response.json()[k] for k in expected} == expected
    assert {k: api.get("/sessions/short").json()[k] for k in expected} == expected
    session = Session.objects.get(id="short")
    assert session.shorting and session.short_limit == "0.2"
    created = Event.objects.get(type="SessionCreated", stream="session-short").data
    assert created["margin"] == expected


def test_defaults_fill_in_and_a_session_without_shorting_shows_nulls(api):
    response = api.post("/sessions", BODY | {"short_limit": "0.3"}, who="org")
    assert response.status_code == 201, response.content
    assert (response.json()["margin_band"], response.json()["initial_margin"]) == ("0.15", "0.05")
    plain = api.post("/sessions", BODY | {"session_id": "plain"}, who="org").json()
    assert (plain["short_limit"], plain["margin_band"], plain["initial_margin"]) == (None, None, None)
    assert "margin" not in Event.objects.get(type="SessionCreated", stream="session-plain").data


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ({"short_limit": "1.5"}, "invalid_short_limit"),
        ({"short_limit": "-0.1"}, "invalid_short_limit"),
        ({"short_limit": "lots"}, "invalid_short_limit"),
        ({"short_limit": "0.00001"}, "invalid_short_limit"),
        ({"short_limit": "0.2", "margin_band": "0"}, "invalid_margin_band"),
        ({"short_limit": "0.2", "margin_band": 0.95}, "invalid_margin_band"),
        ({"short_limit": "0.2", "initial_margin": "1.01"}, "invalid_initial_margin"),
        ({"short_limit": "0.2", "initial_margin": "-0.01"}, "invalid_initial_margin"),
        ({"margin_band": "0.15"}, "invalid_short_limit"),  # a band without shorting
    ],
)
def test_bad_shorting_settings_are_422_with_their_codes_and_write_nothing(api, given, code):
    before = Event.objects.count()
    refused(api.post("/sessions", BODY | given, who="org"), 422, code, before)
    assert not Session.objects.filter(id="short").exists()


@pytest.mark.parametrize("value", [True, None, [0.2], {"a": 1}])
def test_a_setting_that_is_no_number_is_422(api, value):
    before = Event.objects.count()
    response = api.post("/sessions", BODY | {"short_limit": value}, who="org")
    if value is None:  # null is "left out": a session without shorting
        assert response.status_code == 201 and response.json()["short_limit"] is None
        return
    assert response.status_code == 422 and Event.objects.count() == before


# ---------------------------------------------------------------- GET /sessions/{id}/margin


def short_alice(api: Api) -> None:
    """alice gives 45 AAPL (25 held, 20 short) for 54 ORCL from mm: x = [-20, 15, 20, 84]."""
    rfq_id = rfq(api, "45").json()["id"]
    quote_id = quote(api, rfq_id, "1.2").json()["id"]
    assert api.post(f"/quotes/{quote_id}/accept").status_code == 201


def test_margin_shows_my_w_requirement_status_and_short_used(api, users):
    shorting_demo(users)
    short_alice(api)
    response = api.get("/sessions/demo/margin")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["short_limit"], body["margin_band"], body["initial_margin"]) == ("0.2", "0.15", "0.05")
    assert body["prices"] == {"AAPL": "100.000000", "NVDA": "50.000000", "META": "80.000000", "ORCL": "20.000000"}
    assert set(body["ticks"]) == set(PRICES) and all(isinstance(t, int) for t in body["ticks"].values())
    [mine] = body["rows"]
    # W = (15x50 + 20x80 + 84x20) x 0.85 - 20x100 x 1.15 = 3425.5 - 2300; requirement 0.05 x 2000
    assert mine["user_id"] == users["alice"].pk
    assert (mine["W"], mine["requirement"], mine["excess"]) == (
        "1125.500000000000",
        "100.000000000000",
        "1025.500000000000",
    )
    assert (mine["status"], mine["binding_leg"]) == ("ok", "AAPL")
    assert mine["short"] == {"AAPL": "20.000000"} and mine["short_used"] == {"AAPL": "1.00"}
    assert mine["liquidated_at"] is None


def test_a_price_move_shows_reduce_only_then_liquidated(api, users):
    shorting_demo(users)
    short_alice(api)
    tick("demo", {"AAPL": 145})  # W = 3425.5 - 20x145x1.15 = 90.5 < requirement 145
    mine = api.get("/sessions/demo/margin").json()["rows"][0]
    assert (mine["status"], mine["W"], mine["requirement"]) == ("reduce_only", "90.500000000000", "145.000000000000")
    tick("demo", {"AAPL": 160})
    assert api.get("/sessions/demo/margin").json()["rows"][0]["status"] == "liquidated"


def test_everyones_margin_is_for_the_organiser_staff_and_auditors(api, users):
    shorting_demo(users)
    short_alice(api)
    for who in ("org", "auditor"):
        rows = api.get("/sessions/demo/margin?all=true", who=who).json()["rows"]
        assert {r["name"] for r in rows} == {"alice", "bob", "mm", "mm2"}
    assert_error(api.get("/sessions/demo/margin?all=true", who="alice"), 403, "not_organiser")
    assert api.get("/sessions/demo/margin", who="eve").json()["rows"] == []  # holds nothing here
    mm = api.get("/sessions/demo/margin", who="mm").json()["rows"]
    assert [r["name"] for r in mm] == ["mm"] and mm[0]["short"] == {"ORCL": "24.000000"}  # it gave 54 of 30


def test_margin_of_a_session_without_shorting_is_409_not_shorting(api, users):
    create_demo(users)
    assert_error(api.get("/sessions/demo/margin"), 409, "not_shorting")
    assert_error(api.get("/sessions/nope/margin"), 404, "session_not_found")


def test_a_private_session_hides_its_margin_from_outsiders(api, users):
    create_demo(users, visibility="participants", **SETTINGS)
    hidden = api.get("/sessions/demo", who="eve")
    assert hidden.status_code in (403, 404)
    assert_error(api.get("/sessions/demo/margin", who="eve"), hidden.status_code, hidden.json()["code"])


# ---------------------------------------------------------------- refusals through the API


def test_an_rfq_past_the_short_limit_is_409_short_limit(api, users):
    shorting_demo(users)
    before = Event.objects.count()
    body = refused(rfq(api, "46"), 409, "short_limit", before)  # 25 held + 20 short at most
    assert "20" in body["message"]
    assert rfq(api, "45").status_code == 201


def test_a_quote_that_would_take_the_maker_past_its_limit_is_409_short_limit(api, users):
    shorting_demo(users)
    rfq_id = rfq(api, "45").json()["id"]
    before = Event.objects.count()
    refused(quote(api, rfq_id, "1.3"), 409, "short_limit", before)  # mm would give 58.5 ORCL: 28.5 short of 24


def test_a_quote_that_breaks_the_makers_margin_is_409_margin_with_its_figures(api, users):
    shorting_demo(users, margin_band="0.5", initial_margin="0.5")
    rfq_id = rfq(api, "2", give="ORCL", get="AAPL").json()["id"]  # mm would give AAPL for cheap ORCL
    before = Event.objects.count()
    body = refused(quote(api, rfq_id, "22"), 409, "margin", before)  # 44 AAPL from 25 held: 19 short
    assert (body["binding_leg"], body["who"]) == ("AAPL", "you")
    assert float(body["W"]) < float(body["requirement"])


def test_an_accept_that_breaks_the_margin_is_409_margin_with_w_requirement_and_binding_leg(api, users):
    shorting_demo(users, margin_band="0.5", initial_margin="0.5")
    rfq_id = rfq(api, "45", get="NVDA").json()["id"]
    quote_id = quote(api, rfq_id, "0.1").json()["id"]
    before = Event.objects.count()
    body = refused(api.post(f"/quotes/{quote_id}/accept"), 409, "margin", before)
    # alice after: [-20, 19.5, 20, 30]: W = (19.5x50 + 20x80 + 30x20) x 0.5 - 20x100 x 1.5; IM 0.5 x 2000
    assert set(body) == {"code", "message", "W", "requirement", "binding_leg", "who"}
    assert (body["W"], body["requirement"], body["binding_leg"], body["who"]) == (
        "-1412.500000000000",
        "1000.000000000000",
        "AAPL",
        "you",
    )


def test_an_accept_past_the_short_limit_after_holdings_moved_is_409_short_limit(api, users):
    shorting_demo(users)
    first = rfq(api, "40").json()["id"]
    first_quote = quote(api, first, "1").json()["id"]
    second = rfq(api, "10", give="AAPL", get="META").json()["id"]
    second_quote = quote(api, second, "1", who="mm2").json()["id"]
    assert api.post(f"/quotes/{second_quote}/accept").status_code == 201  # alice now holds 15 AAPL
    before = Event.objects.count()
    refused(api.post(f"/quotes/{first_quote}/accept"), 409, "short_limit", before)  # 40 of 15: 25 short


def test_a_quote_that_goes_short_before_any_price_is_409_no_price(api, users):
    create_demo(users, **SETTINGS)  # no tick yet: a short cannot be judged
    rfq_id = rfq(api, "45").json()["id"]
    before = Event.objects.count()
    refused(quote(api, rfq_id, "1.2"), 409, "no_price", before)  # mm would go 24 ORCL short


def batch_demo(users, **kwargs) -> Session:
    return shorting_demo(users, mechanism="batch", **kwargs)


def order(api: Api, qty, rate, give="AAPL", get="ORCL", who="alice"):
    return api.post(
        "/sessions/demo/orders", {"give_leg": give, "get_leg": get, "quantity": qty, "limit_rate": rate}, who=who
    )


def test_an_order_past_the_short_limit_is_409_short_limit(api, users):
    batch_demo(users)
    before = Event.objects.count()
    refused(order(api, "46", "1.2"), 409, "short_limit", before)
    assert order(api, "45", "1.2").status_code == 201


def test_an_order_that_breaks_the_margin_is_409_margin_with_its_figures(api, users):
    batch_demo(users, margin_band="0.5", initial_margin="0.5")
    before = Event.objects.count()
    body = refused(order(api, "45", "0.1", get="NVDA"), 409, "margin", before)
    assert (body["W"], body["requirement"], body["binding_leg"]) == ("-1412.500000000000", "1000.000000000000", "AAPL")
