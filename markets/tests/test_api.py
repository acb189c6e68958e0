"""The JSON API at /api/v1/: the seed's flow, auth, permissions, error codes and exact decimals.

Every rejected request is checked to leave the ledger as it was.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from ledger.store import canonical_json, compute_hash
from markets import tokens
from markets.api.parser import ExactJSONParser
from markets.api.schemas import QuoteIn
from markets.models import RFQ, ApiToken, Quote, Session, Trade
from oracle.models import Tick

pytestmark = pytest.mark.django_db

SEED_BODY = (
    '{"session_id":"demo","legs":["AAPL","NVDA","META","ORCL"],"q":[100,60,80,120],'
    '"start_mode":"immediate","end_mode":"manual"}'
)
SEED_PRICES = {"AAPL": "190.1", "NVDA": "480.2", "META": "350.0", "ORCL": "104.3"}


class Api:
    """A django.test.Client speaking JSON with one bearer token per user."""

    def __init__(self, client: Client, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def headers(self, who: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return headers | (extra or {})

    def get(self, path: str, who: str | None = "alice", **extra):
        return self.client.get(f"/api/v1{path}", headers=self.headers(who, extra))

    def post(self, path: str, body=None, who: str | None = "alice", *, raw: str | bytes | None = None, **extra):
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.client.post(
            f"/api/v1{path}", data=data, content_type="application/json", headers=self.headers(who, extra)
        )


@pytest.fixture
def keys(users) -> dict[str, str]:
    return {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()}


@pytest.fixture
def api(client, keys) -> Api:
    return Api(client, keys)


def events() -> int:
    return Event.objects.count()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code, body
    assert body["message"]
    return body


def rejected(response, status: int, code: str, before: int) -> dict:
    body = assert_error(response, status, code)
    assert events() == before, "a rejected request wrote to the ledger"
    return body


def open_rfq(api: Api, who: str = "alice", qty=10, give="AAPL", get="NVDA") -> int:
    response = api.post("/sessions/demo/rfq", {"give_leg": give, "get_leg": get, "quantity": qty}, who=who)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def quote(api: Api, rfq_id: int, rate="0.62", who: str = "mm", **extra) -> int:
    response = api.post(f"/rfq/{rfq_id}/quote", {"rate": rate} | extra, who=who)
    assert response.status_code == 201, response.content
    return response.json()["id"]


# ---------------------------------------------------------------- the seed's flow


def test_seed_flow_end_to_end(api):
    created = api.post("/sessions", raw=SEED_BODY, who="org")
    assert created.status_code == 201, created.content
    session = created.json()
    assert session["id"] == "demo"
    assert session["status"] == "created"
    assert session["legs"] == ["AAPL", "NVDA", "META", "ORCL"]
    assert session["q"] == ["100.000000", "60.000000", "80.000000", "120.000000"]
    assert (session["start_mode"], session["end_mode"]) == ("immediate", "manual")
    assert session["participants"] == [
        {
            "session_id": "demo",
            "username": "org",
            "name": "org",
            "role": "organiser",
            "joined_at": session["created_at"],
        }
    ]

    for who, role in (("alice", "trader"), ("bob", "trader"), ("mm", "maker")):
        joined = api.post("/sessions/demo/participants", {"role": role}, who=who)
        assert joined.status_code == 201, joined.content
        assert joined.json()["username"] == who and joined.json()["role"] == role

    opened = api.post("/sessions/demo/open", who="org")
    assert opened.status_code == 200, opened.content
    assert opened.json()["status"] == "open"

    allocations = api.get("/sessions/demo/allocations").json()
    assert [row["username"] for row in allocations["holdings"]] == ["alice", "bob", "mm"]
    assert allocations["totals"] == dict(zip(session["legs"], session["q"], strict=True))
    alice_before = allocations["holdings"][0]["x"]

    rfq = api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 10})
    assert rfq.status_code == 201, rfq.content
    rfq = rfq.json()
    assert (rfq["taker"], rfq["quantity"], rfq["status"], rfq["quotes"]) == ("alice", "10.000000", "open", [])

    quoted = api.post(f"/rfq/{rfq['id']}/quote", {"rate": 0.62}, who="mm")
    assert quoted.status_code == 201, quoted.content
    quoted = quoted.json()
    assert (quoted["rate"], quoted["receive"], quoted["status"], quoted["maker"]) == (
        "0.62000000",
        "6.200000",
        "live",
        "mm",
    )
    listed = api.get("/sessions/demo/rfqs").json()
    assert listed[0]["quotes"][0]["id"] == quoted["id"]

    trade = api.post(f"/quotes/{quoted['id']}/accept")
    assert trade.status_code == 201, trade.content
    trade = trade.json()
    assert (trade["give_leg"], trade["give_qty"], trade["get_leg"], trade["get_qty"]) == (
        "AAPL",
        "10.000000",
        "NVDA",
        "6.200000",
    )
    assert (trade["taker"], trade["maker"], trade["rate"]) == ("alice", "mm", "0.62000000")
    assert api.get("/sessions/demo/trades").json() == [trade]

    after = api.get("/sessions/demo/allocations").json()
    alice_after = after["holdings"][0]["x"]
    assert Decimal(alice_before["AAPL"]) - Decimal(alice_after["AAPL"]) == Decimal("10")
    assert Decimal(alice_after["NVDA"]) - Decimal(alice_before["NVDA"]) == Decimal("6.2")
    assert after["totals"] == allocations["totals"]

    settled = api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="org")
    assert settled.status_code == 200, settled.content
    settled = settled.json()
    expected = sum(Decimal(q) * Decimal(SEED_PRICES[leg]) for leg, q in zip(session["legs"], session["q"], strict=True))
    assert settled["settled"] is True and settled["status"] == "settled"
    assert settled["prices"] == {"AAPL": "190.100000", "NVDA": "480.200000", "META": "350.000000", "ORCL": "104.300000"}
    assert Decimal(settled["expected"]) == expected == Decimal("88338")
    assert settled["total"] == settled["expected"] == "88338.000000000000"
    assert sum(Decimal(p["amount"]) for p in settled["payouts"]) == expected
    assert all(len(p["amount"].split(".")[1]) == 12 for p in settled["payouts"])

    payouts = api.get("/sessions/demo/payouts", who="bob")
    assert payouts.status_code == 200 and payouts.json() == settled

    log = api.get("/sessions/demo/events?limit=1000").json()
    assert [e["type"] for e in log["events"]] == [
        "SessionCreated",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantJoined",
        "InitialAllocationAssigned",
        "SessionOpened",
        "RFQRequested",
        "QuoteProvided",
        "TradeExecuted",
        "SessionSettled",
    ]
    assert api.get("/sessions/demo").json()["status"] == "settled"


# ---------------------------------------------------------------- authentication and tokens


def test_every_endpoint_needs_a_valid_token(api, demo, users):
    paths_get = [
        "/me",
        "/sessions",
        "/sessions/demo",
        "/sessions/demo/allocations",
        "/sessions/demo/rfqs",
        "/sessions/demo/trades",
        "/sessions/demo/events",
        "/sessions/demo/prices",
        "/sessions/demo/payouts",
    ]
    paths_post = [
        ("/sessions", json.loads(SEED_BODY) | {"session_id": "other"}),
        ("/sessions/demo/participants", {"role": "trader"}),
        ("/sessions/demo/open", None),
        ("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}),
        ("/rfq/1/quote", {"rate": 1}),
        ("/rfq/1/cancel", None),
        ("/quotes/1/accept", None),
        ("/quotes/1/withdraw", None),
        ("/sessions/demo/settle", {"prices": SEED_PRICES}),
    ]
    revoked, revoked_key = tokens.create_token(users["alice"])
    revoked.is_active = False
    revoked.save()
    inactive = get_user_model().objects.create_user("gone", password="pw", is_active=False)
    inactive_key = tokens.create_token(inactive)[1]
    bad_headers = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sc_not-a-real-token"},
        {"Authorization": f"Bearer {revoked_key}"},
        {"Authorization": f"Bearer {inactive_key}"},
        {"Authorization": f"Basic {api.keys['alice']}"},
        {"Authorization": f"Bearer {api.keys['alice']}x"},
        {"Authorization": "Bearer " + "x" * 5000},
    ]
    before = events()
    for headers in bad_headers:
        for path in paths_get:
            response = api.client.get(f"/api/v1{path}", headers=headers)
            assert_error(response, 401, "unauthenticated")
            assert response["WWW-Authenticate"] == "Bearer"
        for path, body in paths_post:
            response = api.client.post(
                f"/api/v1{path}", data=json.dumps(body), content_type="application/json", headers=headers
            )
            assert_error(response, 401, "unauthenticated")
    assert events() == before


def test_a_logged_in_browser_session_is_not_an_api_token(api, demo, users):
    api.client.force_login(users["org"])
    assert_error(api.get("/sessions", who=None), 401, "unauthenticated")


def test_me_names_the_tokens_user(api):
    assert api.get("/me", who="org").json() == {"username": "org", "can_create_sessions": True}
    assert api.get("/me", who="alice").json() == {"username": "alice", "can_create_sessions": False}


def test_tokens_are_stored_only_as_hashes(users):
    token, raw = tokens.create_token(users["alice"], name="laptop")
    assert raw.startswith("sc_") and len(raw) > 40
    token.refresh_from_db()
    assert token.key_hash == tokens.hash_token(raw) and raw not in token.key_hash
    assert raw.startswith(token.prefix) and len(token.prefix) == tokens.VISIBLE_CHARS
    stored = [str(v) for v in ApiToken.objects.values_list(flat=False).get(pk=token.pk)]
    assert not any(raw in value for value in stored)
    assert tokens.authenticate(raw) == users["alice"]
    assert tokens.authenticate(raw.upper()) is None
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_create_api_token_command_prints_the_token_once(users, client):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "mm", "--name", "bot", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert raw.startswith("sc_") and "\n" not in raw
    assert raw not in err.getvalue() and "shown only this once" in err.getvalue()
    token = ApiToken.objects.get(user=users["mm"], name="bot")
    assert token.key_hash == tokens.hash_token(raw)
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.json()["username"] == "mm"
    quiet_out, quiet_err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "mm", "--quiet", stdout=quiet_out, stderr=quiet_err)
    assert quiet_out.getvalue().strip().startswith("sc_") and quiet_err.getvalue() == ""
    assert quiet_out.getvalue().strip() != raw
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=io.StringIO(), stderr=io.StringIO())


def test_admin_add_form_creates_a_token_and_shows_it_once(client, users):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(admin)
    response = client.post("/admin/markets/apitoken/add/", {"user": users["bob"].pk, "name": "script"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(user=users["bob"], name="script")
    shown = [str(m) for m in response.context["messages"]]
    raw = next(word for m in shown for word in m.split() if word.startswith("sc_"))
    assert tokens.hash_token(raw) == token.key_hash
    change = client.get(f"/admin/markets/apitoken/{token.pk}/change/")
    assert raw not in change.content.decode() and token.key_hash not in change.content.decode()
    assert tokens.authenticate(raw) == users["bob"]


# ---------------------------------------------------------------- permissions (403)


def test_permissions_come_from_the_services(api, users):
    create_demo(users, open_it=False)
    before = events()
    rejected(api.post("/sessions", json.loads(SEED_BODY) | {"session_id": "x"}, who="alice"), 403, "forbidden", before)
    rejected(
        api.post("/sessions/demo/participants", {"role": "trader", "username": "eve"}, who="alice"),
        403,
        "not_organiser",
        before,
    )
    rejected(api.post("/sessions/demo/open", who="alice"), 403, "not_organiser", before)
    rejected(api.post("/sessions/demo/open", who="eve"), 403, "not_a_participant", before)
    added = api.post("/sessions/demo/participants", {"role": "maker", "username": "eve"}, who="org")
    assert added.status_code == 201 and added.json()["username"] == "eve"
    assert api.post("/sessions/demo/open", who="org").status_code == 200

    before = events()
    rfq_id = open_rfq(api)
    rejected(api.post(f"/rfq/{rfq_id}/quote", {"rate": "0.62"}, who="bob"), 403, "not_maker", before + 1)
    rejected(api.post(f"/rfq/{rfq_id}/quote", {"rate": "0.62"}, who="org"), 403, "not_maker", before + 1)
    quote_id = quote(api, rfq_id)
    before = events()
    rejected(api.post(f"/quotes/{quote_id}/accept", who="bob"), 403, "not_your_rfq", before)
    rejected(api.post(f"/quotes/{quote_id}/accept", who="mm"), 403, "not_your_rfq", before)
    rejected(api.post(f"/quotes/{quote_id}/withdraw", who="alice"), 403, "not_your_quote", before)
    rejected(api.post(f"/quotes/{quote_id}/withdraw", who="mm2"), 403, "not_your_quote", before)
    rejected(api.post(f"/rfq/{rfq_id}/cancel", who="mm"), 403, "not_your_rfq", before)
    outsider = get_user_model().objects.create_user("mallory")
    api.keys["mallory"] = tokens.create_token(outsider)[1]
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}, who="mallory"),
        403,
        "not_a_participant",
        before,
    )
    rejected(api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="alice"), 403, "not_organiser", before)
    rejected(api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="mm"), 403, "not_organiser", before)


def test_organiser_cannot_request_quotes(api, demo):
    before = events()
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}, who="org"),
        403,
        "forbidden",
        before,
    )


def test_a_maker_cannot_quote_its_own_rfq(api, demo):
    rfq_id = open_rfq(api, who="mm")
    before = events()
    rejected(api.post(f"/rfq/{rfq_id}/quote", {"rate": "0.62"}, who="mm"), 403, "own_rfq", before)


# ---------------------------------------------------------------- unknown ids (404)


def test_unknown_ids_are_404(api, demo):
    before = events()
    for path in (
        "/sessions/nope",
        "/sessions/nope/allocations",
        "/sessions/nope/rfqs",
        "/sessions/nope/trades",
        "/sessions/nope/events",
        "/sessions/nope/prices",
        "/sessions/nope/payouts",
    ):
        assert_error(api.get(path), 404, "session_not_found")
    rejected(api.post("/sessions/nope/participants", {"role": "trader"}), 404, "session_not_found", before)
    rejected(api.post("/sessions/nope/open", who="org"), 404, "session_not_found", before)
    rejected(
        api.post("/sessions/nope/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}),
        404,
        "session_not_found",
        before,
    )
    rejected(api.post("/sessions/nope/settle", {"prices": SEED_PRICES}, who="org"), 404, "session_not_found", before)
    rejected(api.post("/rfq/999/quote", {"rate": 1}, who="mm"), 404, "rfq_not_found", before)
    rejected(api.post("/rfq/999/cancel"), 404, "rfq_not_found", before)
    rejected(api.post("/quotes/999/accept"), 404, "quote_not_found", before)
    rejected(api.post("/quotes/999/withdraw", who="mm"), 404, "quote_not_found", before)
    create_demo_like = api.post("/sessions", json.loads(SEED_BODY) | {"session_id": "fresh"}, who="org")
    assert create_demo_like.status_code == 201
    before = events()
    rejected(
        api.post("/sessions/fresh/participants", {"role": "trader", "username": "nobody"}, who="org"),
        404,
        "user_not_found",
        before,
    )


def test_ids_out_of_range_are_422_not_500(api, demo):
    before = events()
    rejected(api.post(f"/rfq/{2**63}/quote", {"rate": 1}, who="mm"), 422, "invalid_id", before)
    rejected(api.post("/quotes/0/accept"), 422, "invalid_id", before)
    rejected(api.post("/quotes/abc/accept"), 422, "invalid_id", before)
    rejected(api.post(f"/quotes/{10**30}/withdraw"), 422, "invalid_id", before)
    assert_error(api.get(f"/sessions/demo/events?after={10**30}"), 422, "invalid_request")
    assert_error(api.get("/sessions/demo/events?limit=0"), 422, "invalid_request")
    assert_error(api.get("/sessions/demo/prices?history=-1"), 422, "invalid_request")
    assert_error(api.get("/sessions/" + "x" * 300), 404, "session_not_found")
    assert_error(api.get("/sessions/de%00mo"), 404, "session_not_found")
    assert_error(api.get("/sessions/d%C3%A9mo/rfqs"), 404, "session_not_found")
    rejected(
        api.post("/sessions/de%00mo/rfq", {"give_leg": "A", "get_leg": "B", "quantity": 1}),
        404,
        "session_not_found",
        before,
    )
    rejected(
        api.post("/sessions/demo/participants", {"role": "maker", "username": "m\x00m"}, who="org"),
        422,
        "invalid_request",
        before,
    )
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AA\x00PL", "get_leg": "NVDA", "quantity": 1}),
        422,
        "invalid_request",
        before,
    )
    assert_error(api.get("/sessions?status=\x00"), 422, "invalid_request")
    assert_error(api.get("/sessions/demo/rfqs?status=closed"), 422, "invalid_request")


# ---------------------------------------------------------------- state conflicts (409)


def test_state_conflicts_are_409(api, users):
    assert api.post("/sessions", raw=SEED_BODY, who="org").status_code == 201
    before = events()
    rejected(api.post("/sessions", raw=SEED_BODY, who="org"), 409, "session_exists", before)
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}),
        403,
        "not_a_participant",
        before,
    )
    for who, role in (("alice", "trader"), ("bob", "trader"), ("mm", "maker")):
        assert api.post("/sessions/demo/participants", {"role": role}, who=who).status_code == 201
    before = events()
    rejected(api.post("/sessions/demo/participants", {"role": "maker"}, who="mm"), 409, "already_joined", before)
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}),
        409,
        "session_not_open",
        before,
    )
    rejected(api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="org"), 409, "session_not_open", before)
    assert api.post("/sessions/demo/open", who="org").status_code == 200
    before = events()
    rejected(api.post("/sessions/demo/open", who="org"), 409, "already_open", before)
    rejected(
        api.post("/sessions/demo/participants", {"role": "trader"}, who="eve"), 409, "session_not_joinable", before
    )
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1000}),
        409,
        "insufficient_inventory",
        before,
    )

    rfq_id = open_rfq(api)
    quote_id = quote(api, rfq_id)
    assert api.post(f"/quotes/{quote_id}/accept").status_code == 201
    before = events()
    rejected(api.post(f"/quotes/{quote_id}/accept"), 409, "rfq_closed", before)
    rejected(api.post(f"/rfq/{rfq_id}/quote", {"rate": 1}, who="mm"), 409, "rfq_closed", before)
    rejected(api.post(f"/rfq/{rfq_id}/cancel"), 409, "rfq_closed", before)
    rejected(api.post(f"/quotes/{quote_id}/withdraw", who="mm"), 409, "quote_not_live", before)

    rfq_id = open_rfq(api, qty=5)
    quote_id = quote(api, rfq_id)
    withdrawn = api.post(f"/quotes/{quote_id}/withdraw", who="mm")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    before = events()
    rejected(api.post(f"/quotes/{quote_id}/accept"), 409, "quote_not_live", before)
    cancelled = api.post(f"/rfq/{rfq_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    # The maker could never deliver: 20 AAPL at 100 NVDA each needs more NVDA than mm holds, so the
    # quote itself is refused (the accept checks both inventories again, see test_services).
    rfq_id = open_rfq(api, qty=20)
    before = events()
    refused = rejected(
        api.post(f"/rfq/{rfq_id}/quote", {"rate": "100"}, who="mm"), 409, "insufficient_inventory", before
    )
    assert "you hold 13.800000 NVDA" in refused["message"]

    rejected(api.post("/sessions/demo/settle", who="org"), 409, "missing_price", before)
    assert api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="org").status_code == 200
    before = events()
    rejected(api.post("/sessions/demo/settle", {"prices": SEED_PRICES}, who="org"), 409, "already_settled", before)
    rejected(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1}),
        409,
        "session_settled",
        before,
    )


def test_an_expired_quote_cannot_be_accepted(api, demo):
    start = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    clock.set_time(start)
    rfq_id = open_rfq(api)
    quote_id = quote(api, rfq_id, ttl_seconds=5)
    assert quote_status(api, rfq_id, quote_id) == "live"
    clock.advance(6)
    assert quote_status(api, rfq_id, quote_id) == "expired"  # bots see it lapsed by time
    before = events()
    rejected(api.post(f"/quotes/{quote_id}/accept"), 409, "quote_expired", before)


def quote_status(api, rfq_id: int, quote_id: int) -> str:
    rfqs = api.get("/sessions/demo/rfqs").json()
    rfq = next(r for r in (rfqs["rfqs"] if isinstance(rfqs, dict) else rfqs) if r["id"] == rfq_id)
    return next(q for q in rfq["quotes"] if q["id"] == quote_id)["status"]


# ---------------------------------------------------------------- bad input (400 / 422)


@pytest.mark.parametrize(
    "quantity",
    [
        "abc",
        "-1",
        -1,
        0,
        "0",
        "1.0000001",
        "NaN",
        "Infinity",
        "1e400",
        "",
        "   ",
        True,
        None,
        [1],
        {"v": 1},
        10**12,
        "1" * 65,
        "0.1000000000000000000000000000001",
        "99999.9999999999999999999999999999",
        "1e-999999999",
        "1E+999999999",
    ],
)
def test_bad_quantities_are_422_and_write_nothing(api, demo, quantity):
    before = events()
    response = api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": quantity})
    body = assert_error(response, 422, response.json().get("code"))
    assert body["code"] in {"invalid_number", "invalid_request"}
    assert events() == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"give_leg":"AAPL","get_leg":"NVDA","quantity":1e999999999}',
        '{"give_leg":"AAPL","get_leg":"NVDA","quantity":1e-999999999}',
        '{"give_leg":"AAPL","get_leg":"NVDA","quantity":-0.0}',
        '{"give_leg":"AAPL","get_leg":"NVDA","quantity":' + "9" * 1000 + "}",
        '{"give_leg":"AAPL","get_leg":"NVDA","quantity":0.1000000000000000000000000000001}',
    ],
)
def test_extreme_json_numbers_are_refused(api, demo, raw):
    before = events()
    response = api.post("/sessions/demo/rfq", raw=raw)
    assert response.status_code == 422, response.content
    assert response.json()["code"] in {"invalid_number", "invalid_request"}
    assert events() == before


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ('{"give_leg":"AAPL"', 400, "malformed_json"),
        ("not json", 400, "malformed_json"),
        (b"\xff\xfe\x00garbage", 400, "malformed_json"),
        ('{"give_leg":"AAPL","get_leg":"NVDA","quantity":NaN}', 400, "malformed_json"),
        ('{"give_leg":"AAPL","get_leg":"NVDA","quantity":Infinity}', 400, "malformed_json"),
        ('{"give_leg":"AAPL","get_leg":"NVDA","quantity":' + "9" * 5000 + "}", 400, "malformed_json"),
        ("[" * 100000, 400, "malformed_json"),
        ("[1, 2]", 422, "invalid_request"),
        ('"text"', 422, "invalid_request"),
        ("null", 422, "invalid_request"),
        ("", 422, "invalid_request"),
        ("{}", 422, "invalid_request"),
        ('{"give_leg":"AAPL","get_leg":"NVDA"}', 422, "invalid_request"),
        ('{"give_leg":1,"get_leg":"NVDA","quantity":1}', 422, "invalid_request"),
        ('{"give_leg":"AAPL","get_leg":"NVDA","quantity":1,"extra":1}', 422, "invalid_request"),
        ('{"give_leg":"' + "A" * 100 + '","get_leg":"NVDA","quantity":1}', 422, "invalid_request"),
        ('{"give_leg":"XXX","get_leg":"NVDA","quantity":1}', 422, "unknown_leg"),
        ('{"give_leg":"AAPL","get_leg":"aapl","quantity":1}', 422, "same_leg"),
    ],
)
def test_malformed_bodies_are_clear_errors(api, demo, raw, status, code):
    before = events()
    response = api.post("/sessions/demo/rfq", raw=raw)
    rejected(response, status, code, before)


def test_validation_messages_name_the_field(api, demo):
    body = assert_error(api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA"}), 422, "invalid_request")
    assert "quantity" in body["message"]
    body = assert_error(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1.1234567"}),
        422,
        "invalid_number",
    )
    assert "6 decimal places" in body["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"session_id": ""},
        {"session_id": "has space"},
        {"session_id": "x" * 65},
        {"legs": "AAPL,NVDA"},
        {"legs": ["AAPL"]},
        {"legs": ["AAPL", "AAPL"]},
        {"legs": ["AAPL", "not a leg"]},
        {"q": [1, 2, 3]},
        {"q": [100, 60, 80, -1]},
        {"q": [100, 60, 80, "x"]},
        {"q": "100"},
        {"start_mode": "later"},
        {"end_mode": "never"},
        {"start_mode": "scheduled"},
        {"end_mode": "timed"},
        {"t1": "2026-01-01T10:00:00"},
        {"t1": 1767261600},
        {"t1": "yesterday"},
        {"t1": "9999-12-31T23:59:59-14:00"},
        {"t1": "0001-01-01T00:00:00+14:00"},
        {"t1": "2026-01-02T10:00:00Z", "t2": "2026-01-01T10:00:00Z"},
        {"fixing_rule": {"rule": "mean"}},
        {"fixing_rule": {"rule": "median", "window": 0}},
        {"fixing_rule": {"rule": "median", "window": 1.5}},
        {"fixing_rule": {"rule": "twap", "window": 10**30}},
        {"allocation_mode": "random"},
        {"title": "x" * 201},
        {"unknown": 1},
    ],
)
def test_bad_sessions_are_refused(api, users, change):
    before = events()
    response = api.post("/sessions", json.loads(SEED_BODY) | change, who="org")
    assert response.status_code == 422, response.content
    assert Session.objects.count() == 0
    assert events() == before


def test_sessions_with_times_and_rules(api, users):
    body = json.loads(SEED_BODY) | {
        "session_id": "timed",
        "title": "Timed demo",
        "start_mode": "scheduled",
        "end_mode": "timed",
        "t1": "2030-01-01T10:00:00+01:00",
        "t2": "2030-01-01T12:00:00Z",
        "fixing_rule": {"rule": "median", "window": "30"},
    }
    response = api.post("/sessions", body, who="org")
    assert response.status_code == 201, response.content
    session = response.json()
    assert session["t1"].startswith("2030-01-01T09:00:00") and session["t2"].startswith("2030-01-01T12:00:00")
    assert session["fixing_rule"] == {"rule": "median", "window": 30}
    before = events()
    rejected(api.post("/sessions/timed/open", who="org"), 409, "scheduled_start", before)


def test_quote_ttl_and_rate_errors(api, demo):
    rfq_id = open_rfq(api)
    before = events()
    for extra, code in (
        ({"rate": "0.62", "ttl_seconds": 0}, "invalid_ttl"),
        ({"rate": "0.62", "ttl_seconds": 86401}, "invalid_ttl"),
        ({"rate": "0.62", "ttl_seconds": 1.5}, "invalid_number"),
        ({"rate": "0.62", "ttl_seconds": 1e999999999}, "invalid_number"),
        ({"rate": "0.62", "ttl_seconds": "soon"}, "invalid_number"),
        ({"rate": "0.000000001"}, "invalid_number"),
        ({"rate": "0.00000001"}, "trade_too_small"),
        ({"rate": 10**7}, "invalid_number"),
        ({"rate": "0"}, "invalid_number"),
    ):
        raw = json.dumps(extra).replace("Infinity", "1e999999999")
        rejected(api.post(f"/rfq/{rfq_id}/quote", raw=raw, who="mm"), 422, code, before)


def test_bad_settlement_prices(api, demo):
    before = events()
    for prices, code in (
        ({"AAPL": "190.1"}, "missing_price"),
        (SEED_PRICES | {"TSLA": 1}, "unknown_leg"),
        (SEED_PRICES | {"AAPL": "-1"}, "invalid_number"),
        (SEED_PRICES | {"AAPL": "1.0000001"}, "invalid_number"),
        (SEED_PRICES | {"AAPL": True}, "invalid_number"),
        (SEED_PRICES | {"AAPL": 10**8}, "invalid_number"),
    ):
        rejected(api.post("/sessions/demo/settle", {"prices": prices}, who="org"), 422, code, before)
    rejected(api.post("/sessions/demo/settle", {"prices": "190.1"}, who="org"), 422, "invalid_request", before)
    rejected(api.post("/sessions/demo/settle", {"price": SEED_PRICES}, who="org"), 422, "invalid_request", before)


def test_custom_allocation_on_open(api, users):
    create_demo(users, open_it=False)
    before = events()
    bad = {"alice": [100, 60, 80, 120]}
    rejected(
        api.post("/sessions/demo/open", {"allocation": bad | {"eve": [0, 0, 0, 0]}}, who="org"),
        422,
        "invalid_allocation",
        before,
    )
    rejected(
        api.post("/sessions/demo/open", {"allocation": {"alice": [1, 2]}}, who="org"), 422, "invalid_allocation", before
    )
    rejected(
        api.post("/sessions/demo/open", {"allocation": {"alice": [99, 60, 80, 120]}}, who="org"),
        422,
        "invalid_allocation",
        before,
    )
    allocation = {"alice": ["50.5", 30, 40, 60], "bob": [49.5, 30, 40, 60]}
    opened = api.post("/sessions/demo/open", {"allocation": allocation}, who="org")
    assert opened.status_code == 200, opened.content
    assert opened.json()["allocation_mode"] == "custom"  # the projection follows the event
    rows = {r["username"]: r for r in api.get("/sessions/demo/allocations").json()["holdings"]}
    assert rows["alice"]["x"] == {"AAPL": "50.500000", "NVDA": "30.000000", "META": "40.000000", "ORCL": "60.000000"}
    assert rows["bob"]["initial"]["AAPL"] == "49.500000"
    assert rows["mm"]["x"]["AAPL"] == "0.000000"
    log = api.get("/sessions/demo/events?limit=1000").json()["events"]
    assert next(e for e in log if e["type"] == "InitialAllocationAssigned")["payload"]["mode"] == "custom"


# ---------------------------------------------------------------- exact decimals


def test_json_numbers_are_parsed_as_decimal_not_float(rf):
    request = rf.post("/", data=b'{"rate": 0.1, "ttl_seconds": 60}', content_type="application/json")
    data = ExactJSONParser().parse_body(request)
    assert data["rate"] == Decimal("0.1") and isinstance(data["rate"], Decimal)
    parsed = QuoteIn.model_validate(data)
    assert parsed.rate == Decimal("0.1") and str(parsed.rate) == "0.1"
    long = ExactJSONParser().parse_body(
        rf.post("/", data=b'{"x": 123456789.12345678901}', content_type="application/json")
    )
    assert str(long["x"]) == "123456789.12345678901"  # a float would have lost digits


def test_point_one_arrives_exactly(api, demo):
    rfq = api.post("/sessions/demo/rfq", raw='{"give_leg":"AAPL","get_leg":"NVDA","quantity":0.1}')
    assert rfq.status_code == 201, rfq.content
    assert rfq.json()["quantity"] == "0.100000"
    assert RFQ.objects.get(id=rfq.json()["id"]).quantity == 100_000
    quoted = api.post(f"/rfq/{rfq.json()['id']}/quote", raw='{"rate":0.1}', who="mm")
    assert quoted.status_code == 201, quoted.content
    assert quoted.json()["rate"] == "0.10000000" and quoted.json()["receive"] == "0.010000"
    assert Quote.objects.get(id=quoted.json()["id"]).rate == 10_000_000
    trade = api.post(f"/quotes/{quoted.json()['id']}/accept")
    assert trade.json()["get_qty"] == "0.010000"
    assert Trade.objects.get().get_qty == 10_000
    prices = {"AAPL": 0.1, "NVDA": 0.2, "META": 0.3, "ORCL": 0.7}
    settled = api.post("/sessions/demo/settle", raw=json.dumps({"prices": prices}), who="org").json()
    assert settled["prices"] == {"AAPL": "0.100000", "NVDA": "0.200000", "META": "0.300000", "ORCL": "0.700000"}
    assert settled["expected"] == "130.000000000000"  # 100*.1 + 60*.2 + 80*.3 + 120*.7, exactly
    assert sum(Decimal(p["amount"]) for p in settled["payouts"]) == Decimal("130")


def test_strings_and_numbers_agree(api, demo):
    a = api.post("/sessions/demo/rfq", raw='{"give_leg":"AAPL","get_leg":"NVDA","quantity":"2.5"}').json()
    b = api.post("/sessions/demo/rfq", raw='{"give_leg":"aapl","get_leg":"nvda","quantity":2.50}').json()
    assert a["quantity"] == b["quantity"] == "2.500000"
    assert (b["give_leg"], b["get_leg"]) == ("AAPL", "NVDA")


# ---------------------------------------------------------------- reads


def test_lists_and_filters(api, demo, users):
    create_demo(users, session_id="second", open_it=False)
    sessions = api.get("/sessions").json()
    assert {s["id"] for s in sessions} == {"demo", "second"}
    assert [s["id"] for s in api.get("/sessions?status=open").json()] == ["demo"]
    first = open_rfq(api)
    second = open_rfq(api, who="bob", qty=1, give="META", get="ORCL")
    quote(api, first, rate="0.6")
    quote(api, first, rate="0.61", who="mm2")
    api.post(f"/rfq/{second}/cancel", who="bob")
    rfqs = api.get("/sessions/demo/rfqs").json()
    assert [r["id"] for r in rfqs] == [second, first]
    assert [q["rate"] for q in rfqs[1]["quotes"]] == ["0.60000000", "0.61000000"]
    assert [r["id"] for r in api.get("/sessions/demo/rfqs?status=cancelled").json()] == [second]
    assert api.get("/sessions/demo/trades").json() == []
    detail = api.get("/sessions/demo").json()
    assert [p["username"] for p in detail["participants"]] == ["alice", "bob", "mm", "mm2", "org"]
    unsettled = api.get("/sessions/demo/payouts").json()
    assert unsettled["settled"] is False and unsettled["payouts"] == [] and unsettled["total"] is None


def test_events_are_paged_and_verifiable(api, demo):
    everything = Event.objects.filter(stream="session-demo").order_by("seq")
    count = everything.count()
    page = api.get("/sessions/demo/events?limit=3").json()
    assert [e["seq"] for e in page["events"]] == [e.seq for e in everything[:3]]
    assert page["has_more"] is True and page["next_after"] == page["events"][-1]["seq"]
    seen = list(page["events"])
    while page["has_more"]:
        page = api.get(f"/sessions/demo/events?after={page['next_after']}&limit=3").json()
        seen += page["events"]
    assert len(seen) == count
    assert page["next_after"] == seen[-1]["seq"]
    empty = api.get(f"/sessions/demo/events?after={seen[-1]['seq']}").json()
    assert empty == {"session_id": "demo", "events": [], "next_after": seen[-1]["seq"], "has_more": False}
    prev = "0" * 64
    for e in seen:
        assert isinstance(e["payload"], dict)
        assert e["prev_hash"] == prev
        text = canonical_json(e["payload"])
        assert compute_hash(e["prev_hash"], e["stream"], e["version"], e["type"], e["at"], text) == e["hash"]
        prev = e["hash"]


def test_prices_latest_and_history(api, demo):
    at = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    for i, price in enumerate((190_100_000, 190_200_000, 190_300_000)):
        Tick.objects.create(session_id="demo", symbol="AAPL", at=at + dt.timedelta(seconds=i), price=price, source="t")
    Tick.objects.create(session_id="demo", symbol="NVDA", at=at, price=480_200_000, source="t")
    Tick.objects.create(session_id="other", symbol="META", at=at, price=1, source="t")
    body = api.get("/sessions/demo/prices").json()
    assert body["latest"]["AAPL"]["price"] == "190.300000"
    assert body["latest"]["NVDA"]["price"] == "480.200000"
    assert set(body["latest"]) == {"AAPL", "NVDA"} and body["history"] == {}
    body = api.get("/sessions/demo/prices?history=2").json()
    assert [p["price"] for p in body["history"]["AAPL"]] == ["190.200000", "190.300000"]
    assert body["history"]["META"] == []
    settled = api.post("/sessions/demo/settle", who="org")
    assert settled.status_code == 409  # META and ORCL have no price
    Tick.objects.create(session_id="demo", symbol="META", at=at, price=350_000_000, source="t")
    Tick.objects.create(session_id="demo", symbol="ORCL", at=at, price=104_300_000, source="t")
    settled = api.post("/sessions/demo/settle", who="org")
    assert settled.status_code == 200, settled.content
    assert settled.json()["fixing"]["source"] == "oracle"
    assert settled.json()["prices"]["AAPL"] == "190.300000"


def test_openapi_and_docs(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/api/v1/sessions": {"get", "post"},
        "/api/v1/sessions/{session_id}": {"get"},
        "/api/v1/sessions/{session_id}/participants": {"post"},
        "/api/v1/sessions/{session_id}/open": {"post"},
        "/api/v1/sessions/{session_id}/allocations": {"get"},
        "/api/v1/sessions/{session_id}/rfq": {"post"},
        "/api/v1/sessions/{session_id}/rfqs": {"get"},
        "/api/v1/rfq/{rfq_id}/quote": {"post"},
        "/api/v1/rfq/{rfq_id}/cancel": {"post"},
        "/api/v1/quotes/{quote_id}/accept": {"post"},
        "/api/v1/quotes/{quote_id}/withdraw": {"post"},
        "/api/v1/sessions/{session_id}/trades": {"get"},
        "/api/v1/sessions/{session_id}/events": {"get"},
        "/api/v1/sessions/{session_id}/prices": {"get"},
        "/api/v1/sessions/{session_id}/settle": {"post"},
        "/api/v1/sessions/{session_id}/payouts": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            if method == "post":
                names = [p["name"] for p in paths[path]["post"].get("parameters", [])]
                assert "Idempotency-Key" in names, path
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"openapi.json" in docs.content
    # Without internet too: Swagger's assets come from this site's static files, not a CDN.
    from django.contrib.staticfiles import finders

    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.content.decode())
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset


def test_an_unexpected_error_is_a_json_500_and_writes_nothing(api, demo, monkeypatch):
    from markets import services

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(services, "request_rfq", boom)
    before = events()
    response = api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1})
    body = rejected(response, 500, "internal_error", before)
    assert "kaboom" not in body["message"]


def test_a_too_large_body_is_400(api, demo, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = events()
    raw = json.dumps({"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1, "pad": "x" * 2000})
    rejected(api.post("/sessions/demo/rfq", raw=raw), 400, "bad_request", before)
    rejected(api.post("/sessions/demo/rfq", raw=raw, **{"Idempotency-Key": "big"}), 400, "bad_request", before)
