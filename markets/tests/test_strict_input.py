"""Input is read one way only, at every edge: ASCII decimal digits, ids written in digits, one price per
leg, session ids unique ignoring case, leg names with spaces whose case is kept. Every refusal is a clear
message with a code, and writes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.models import Event
from markets import tokens
from markets.models import Session, Trade
from markets.tests.test_api import Api, assert_error

pytestmark = pytest.mark.django_db

PRICES = {"AAPL": "190.1", "NVDA": "480.2", "META": "350", "ORCL": "104.3"}


@pytest.fixture
def api(client, users):
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


def rejected(response, status: int, code: str) -> dict:
    before = Event.objects.count()
    body = assert_error(response, status, code)
    assert Event.objects.count() == before
    return body


@pytest.mark.parametrize("text", ["1_0", "\u0661\u0660", "\uff11\uff10", ".5", "5.", "+5", "1,5", "0x10", "\u20075"])
def test_numbers_that_are_not_ascii_decimals_are_refused_everywhere(api, demo, client, users, text):
    before = Event.objects.count()
    body = assert_error(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": text}), 422, "invalid_number"
    )
    assert "quantity: must be" in body["message"]
    if text == "1,5":  # a form reads a decimal comma (test_edges.py); the API never does
        return
    client.force_login(users["alice"])
    page = client.post(
        "/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": text}, headers={"HX-Request": "true"}
    )
    assert page.status_code == 200 and "Quantity must be a number" in page.content.decode()
    assert Event.objects.count() == before


def test_json_numbers_and_exponents_are_read_exactly(api, demo):
    rfq = api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "2.5e0"})
    assert rfq.status_code == 201 and rfq.json()["quantity"] == "2.500000"
    raw = '{"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1e-6}'
    assert api.post("/sessions/demo/rfq", raw=raw).json()["quantity"] == "0.000001"


@pytest.mark.parametrize(
    "path",
    [
        "/quotes/%20{}/accept",
        "/quotes/{}.0/accept",
        "/quotes/%2B{}/accept",
        "/quotes/0{}/accept",
        "/quotes/{}%20/accept",
    ],
)
def test_ids_in_paths_are_written_one_way_only(api, demo, users, path):
    from markets import services

    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    rejected(api.post(path.format(quote.id)), 422, "invalid_id")
    assert Trade.objects.count() == 0
    assert api.post(f"/quotes/{quote.id}/accept").status_code == 201


def test_two_prices_for_one_leg_and_null_prices_are_refused(api, demo):
    body = rejected(
        api.post("/sessions/demo/settle", {"prices": PRICES | {"aapl": "500"}}, who="org"), 422, "duplicate_price"
    )
    assert body["message"] == "Two prices given for AAPL ('AAPL' and 'aapl'): give one"
    body = rejected(api.post("/sessions/demo/settle", {"prices": None}, who="org"), 422, "invalid_request")
    assert "prices: must map each leg to a price; leave the key out to settle at the fixing" in body["message"]
    # Legs may be named in any case, once each.
    lower = {leg.lower(): price for leg, price in PRICES.items()}
    settled = api.post("/sessions/demo/settle", {"prices": lower}, who="org")
    assert settled.status_code == 200 and settled.json()["prices"]["AAPL"] == "190.100000"


def test_settle_command_refuses_two_prices_for_one_leg(demo):
    base = [f"--price={leg}={price}" for leg, price in PRICES.items() if leg != "AAPL"]
    cases = [
        (["--price", "AAPL=1", "--price", "aapl=2"], "Two prices given for AAPL ('AAPL' and 'aapl'): give one"),
        (["--price", "AAPL=1", "--price", "AAPL=2"], "--price AAPL is given twice: give one price per leg"),
    ]
    for extra, message in cases:
        with pytest.raises(CommandError) as info:
            call_command("settle", "demo", *base, *extra, stdout=StringIO())
        assert str(info.value) == message
    assert Session.objects.get(id="demo").status == "open"


def test_session_ids_are_unique_ignoring_case(api, users):
    body = {"session_id": "demo", "legs": ["AAPL", "NVDA"], "q": [1, 1]}
    assert api.post("/sessions", body, who="org").status_code == 201
    refused = rejected(api.post("/sessions", body | {"session_id": "DEMO"}, who="org"), 409, "session_exists")
    assert refused["message"] == "Session DEMO already exists as demo (ids are unique ignoring case)"


def test_curve_legs_with_spaces_keep_their_case_and_match_in_any_case(api, users, client):
    body = {"session_id": "gold", "legs": ["GOLD 3m", "GOLD 1y", "GOLD 5y"], "q": [30, 30, 30]}
    created = api.post("/sessions", body, who="org")
    assert created.status_code == 201 and created.json()["legs"] == ["GOLD 3m", "GOLD 1y", "GOLD 5y"]
    for who, role in (("alice", "trader"), ("mm", "maker")):
        assert api.post("/sessions/gold/participants", {"role": role}, who=who).status_code == 201
    assert api.post("/sessions/gold/open", who="org").status_code == 200
    rfq = api.post("/sessions/gold/rfq", {"give_leg": "gold 3M", "get_leg": "GOLD  5Y", "quantity": 1})
    assert rfq.status_code == 201 and (rfq.json()["give_leg"], rfq.json()["get_leg"]) == ("GOLD 3m", "GOLD 5y")
    dup = {"session_id": "gold2", "legs": ["GOLD 3m", "gold 3M"], "q": [1, 1]}
    assert "GOLD 3m repeated" in rejected(api.post("/sessions", dup, who="org"), 422, "invalid_legs")["message"]
    # The form splits names on commas only: "GOLD 3m" stays one leg.
    client.force_login(users["org"])
    form = {"session_id": "curve", "legs": "GOLD 3m, GOLD 1y, GOLD 5y", "q": "10 10 10", "start_mode": "immediate",
            "end_mode": "manual", "allocation_mode": "pro_rata", "fixing_rule": "last"}  # fmt: skip
    response = client.post("/", form)
    assert response.status_code == 302, response.content.decode()[:500]
    assert Session.objects.get(id="curve").legs == ["GOLD 3m", "GOLD 1y", "GOLD 5y"]


def test_the_openapi_schema_states_the_limits(api):
    schema = api.client.get("/api/v1/openapi.json").json()
    text = str(schema)
    for phrase in ("at most 1,000,000,000 units", "at most 1,000,000,", "at most 10,000,000", "2 to 32 leg names",
                   "unique ignoring case", "digits only"):  # fmt: skip
        assert phrase in text, phrase


def test_the_floor_names_quotes_by_canonical_ids_only(client, users, demo):
    from markets import services

    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    client.force_login(users["alice"])
    for path in (f"/quotes/0{quote.id}/accept", f"/quotes/{quote.id}.0/accept", f"/quotes/%20{quote.id}/accept"):
        assert client.post(path, headers={"HX-Request": "true"}).status_code == 404
    assert Trade.objects.count() == 0
    assert client.post(f"/quotes/{quote.id}/accept", headers={"HX-Request": "true"}).status_code == 200
    assert Trade.objects.count() == 1
