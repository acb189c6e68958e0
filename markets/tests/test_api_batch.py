"""Batch auctions through the JSON API: a batch session created with its settings, sealed limit orders
placed, listed and cancelled, held / reserved / available per leg, the organiser's cut and the batches
with their prices and fills; every refusal with its code and status, and nothing written; idempotent
retries; and what each viewer reads of the log (sealed orders)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from conftest import create_demo, make_user
from ledger import clock
from ledger.models import Event
from markets import services, tokens
from markets.models import Batch, Order, Session
from markets.tests.test_api import Api, assert_error
from markets.tests.test_batch_service import T0, tick

pytestmark = pytest.mark.django_db

BATCH_BODY = {"session_id": "auc", "legs": ["AAPL", "NVDA"], "q": [100, 60], "mechanism": "batch"}


@pytest.fixture
def people(users):
    """The seed's users and an auditor (`markets.view_any_session`), each with a token."""
    auditor = make_user("auditor")
    auditor.user_permissions.add(Permission.objects.get(codename="view_any_session"))
    return {**users, "auditor": auditor}


@pytest.fixture
def api(client, people) -> Api:
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in people.items()})


@pytest.fixture
def auction(users):
    """The seed's four legs as a batch session (10 s cuts), opened at T0 with the oracle's prices."""
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", batch_seconds=10)
    tick("auc", T0)
    return users


def written() -> int:
    return Event.objects.count()


def order_body(**kw) -> dict:
    return {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "10", "limit_rate": "0.39"} | kw


# ---------------------------------------------------------------- the session


def test_a_batch_session_is_created_with_its_settings_read_exactly(api, users):
    body = BATCH_BODY | {"batch_seconds": 10, "batch_band": "0.10", "max_orders": "5", "min_order": "0.5"}
    created = api.post("/sessions", body, who="org")
    assert created.status_code == 201, created.content
    shown = created.json()
    assert {k: shown[k] for k in ("mechanism", "batch_seconds", "batch_band", "max_orders", "min_order")} == {
        "mechanism": "batch",
        "batch_seconds": 10,
        "batch_band": "0.10",
        "max_orders": 5,
        "min_order": "0.500000",
    }
    assert shown["next_cut_at"] is None and shown["batches"] == 0  # not open yet
    # A JSON number is read exactly too: 0.05 stays 0.05 (never a float's 0.05000000000000000277).
    other = api.post("/sessions", BATCH_BODY | {"session_id": "auc2", "batch_band": 0.05}, who="org")
    assert other.status_code == 201 and other.json()["batch_band"] == "0.05"
    assert Session.objects.get(id="auc2").batch_band == "0.05"
    rfq = api.post("/sessions", BATCH_BODY | {"session_id": "plain", "mechanism": "rfq"}, who="org").json()
    assert (rfq["mechanism"], rfq["batch_seconds"], rfq["batch_band"], rfq["next_cut_at"]) == ("rfq", None, None, None)
    assert api.get("/sessions/auc").json()["batch_band"] == "0.10"


def test_an_opened_batch_session_shows_its_next_cut(api, auction):
    shown = api.get("/sessions/auc").json()
    assert shown["mechanism"] == "batch" and shown["next_cut_at"] == "2030-01-07T09:00:10Z"
    assert shown["max_orders"] == 20 and shown["min_order"] == "0.010000" and shown["batch_band"] == "0.10"


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"mechanism": "auction"}, 422, "invalid_request"),
        ({"batch_seconds": 0}, 422, "invalid_batch_settings"),
        ({"batch_seconds": 3601}, 422, "invalid_batch_settings"),
        ({"batch_seconds": "ten"}, 422, "invalid_batch_settings"),
        ({"batch_seconds": True}, 422, "invalid_number"),
        ({"max_orders": 0}, 422, "invalid_batch_settings"),
        ({"batch_band": "0"}, 422, "invalid_batch_band"),
        ({"batch_band": "0.6"}, 422, "invalid_batch_band"),
        ({"batch_band": "0.00001"}, 422, "invalid_batch_band"),
        ({"batch_band": "-0.1"}, 422, "invalid_batch_band"),
        ({"batch_band": [0.1]}, 422, "invalid_number"),
        ({"batch_band": "0e-99999999999999999999"}, 422, "invalid_batch_band"),  # beyond Decimal's exponents
        ({"q": ["0e-99999999999999999999", 60]}, 422, "invalid_number"),
        ({"mechanism": "rfq", "batch_seconds": 10}, 422, "invalid_mechanism"),
    ],
)
def test_bad_batch_settings_are_refused_with_their_codes_and_write_nothing(api, users, extra, status, code):
    before = written()
    assert_error(api.post("/sessions", BATCH_BODY | extra, who="org"), status, code)
    assert written() == before and not Session.objects.exists()


def test_a_setting_named_twice_is_refused(api, users):
    raw = '{"session_id":"auc","legs":["A","B"],"q":[1,1],"mechanism":"batch","batch_band":"0.1","batch_band":"0.5"}'
    assert_error(api.post("/sessions", raw=raw, who="org"), 400, "duplicate_key")
    assert not Session.objects.exists()


# ---------------------------------------------------------------- orders


def test_an_order_is_placed_listed_and_cancelled(api, auction):
    placed = api.post("/sessions/auc/orders", order_body(good_for=3))
    assert placed.status_code == 201, placed.content
    order = placed.json()
    assert {k: order[k] for k in ("give_leg", "get_leg", "quantity", "rest", "limit_rate", "status")} == {
        "give_leg": "AAPL",
        "get_leg": "NVDA",
        "quantity": "10.000000",
        "rest": "10.000000",
        "limit_rate": "0.39000000",
        "status": "resting",
    }
    assert (order["batches_left"], order["gtc"], order["username"], order["received"]) == (
        3,
        False,
        "alice",
        "0.000000",
    )
    assert order["placed_at"] == "2030-01-07T09:00:00Z" and order["seq"] > 0
    gtc = api.post("/sessions/auc/orders", order_body(quantity=1, gtc=True)).json()
    assert (gtc["gtc"], gtc["batches_left"]) == (True, None)
    assert [o["id"] for o in api.get("/sessions/auc/orders").json()] == [order["id"], gtc["id"]]
    assert api.get("/sessions/auc/orders", who="bob").json() == []  # your own only
    cancelled = api.post(f"/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["closed_at"] == "2030-01-07T09:00:00Z"
    assert [o["id"] for o in api.get("/sessions/auc/orders?status=resting").json()] == [gtc["id"]]
    assert [o["id"] for o in api.get("/sessions/auc/orders?status=cancelled").json()] == [order["id"]]
    assert [o["id"] for o in api.get(f"/sessions/auc/orders?after={order['id']}").json()] == [gtc["id"]]
    assert len(api.get("/sessions/auc/orders?limit=1").json()) == 1


def test_numbers_are_read_exactly_json_numbers_too(api, auction):
    placed = api.post(
        "/sessions/auc/orders", raw='{"give_leg":"AAPL","get_leg":"NVDA","quantity":0.1,"limit_rate":0.3})'
    )
    assert_error(placed, 400, "malformed_json")  # the stray parenthesis: not JSON
    placed = api.post(
        "/sessions/auc/orders", raw='{"give_leg":"AAPL","get_leg":"NVDA","quantity":0.1,"limit_rate":0.3}'
    )
    assert placed.status_code == 201 and (placed.json()["quantity"], placed.json()["limit_rate"]) == (
        "0.100000",
        "0.30000000",
    )
    assert Order.objects.get().quantity == 100_000 and Order.objects.get().limit_rate == 30_000_000


def test_only_the_organiser_staff_and_auditors_list_everyones_orders(api, people, auction):
    api.post("/sessions/auc/orders", order_body())
    api.post(
        "/sessions/auc/orders", order_body(give_leg="NVDA", get_leg="AAPL", quantity="4", limit_rate="2.45"), who="mm"
    )
    for who in ("alice", "eve"):
        assert_error(api.get("/sessions/auc/orders?all=true", who=who), 403, "not_organiser")
        assert_error(api.get("/sessions/auc/holdings?all=true", who=who), 403, "not_organiser")
    for who in ("org", "auditor"):
        everyone = api.get("/sessions/auc/orders?all=true", who=who).json()
        assert [o["username"] for o in everyone] == ["alice", "mm"]
        assert everyone[1]["limit_rate"] == "2.45000000"
    assert api.get("/sessions/auc/orders", who="eve").json() == []  # a watcher has none


def test_refused_orders_say_why_with_their_codes_and_write_nothing(api, users):
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", max_orders=2, min_order="0.5")
    create_demo(users, "rfqs")
    before = written()
    cases = [
        ("auc", order_body(quantity="25.5"), 409, "insufficient_available"),
        ("auc", order_body(quantity="0.4"), 422, "order_too_small"),
        ("auc", order_body(get_leg="AAPL"), 422, "same_leg"),
        ("auc", order_body(get_leg="GOLD"), 422, "unknown_leg"),
        ("auc", order_body(limit_rate="0"), 422, "invalid_number"),
        ("auc", order_body(limit_rate="0.123456789"), 422, "invalid_number"),
        ("auc", order_body(quantity=-1), 422, "invalid_number"),
        ("auc", order_body(good_for=0), 422, "invalid_lifetime"),
        ("auc", order_body(good_for=1001), 422, "invalid_lifetime"),
        ("auc", order_body(good_for=2, gtc=True), 422, "invalid_lifetime"),
        ("auc", order_body(gtc="yes"), 422, "invalid_lifetime"),
        ("auc", order_body(gtc=1), 422, "invalid_lifetime"),
        ("auc", order_body(side="buy"), 422, "invalid_request"),
        ("auc", {"give_leg": "AAPL"}, 422, "invalid_request"),
        ("rfqs", order_body(), 409, "not_batch"),
        ("nosuch", order_body(), 404, "session_not_found"),
    ]
    for sid, body, status, code in cases:
        assert_error(api.post(f"/sessions/{sid}/orders", body), status, code)
    figures = api.post("/sessions/auc/orders", order_body(quantity="25.5")).json()["message"]
    assert "hold 25.000000 AAPL" in figures and "25.000000 available" in figures
    assert_error(api.post("/sessions/auc/orders", order_body(), who="eve"), 403, "not_a_participant")
    assert_error(api.post("/sessions/auc/orders", order_body(), who="org"), 403, "forbidden")
    assert_error(api.post("/sessions/auc/orders", order_body(), who=None), 401, "unauthenticated")
    raw = '{"give_leg":"AAPL","get_leg":"NVDA","quantity":"1","quantity":"20","limit_rate":"1"}'
    assert_error(api.post("/sessions/auc/orders", raw=raw), 400, "duplicate_key")
    assert written() == before and not Order.objects.exists()
    for _ in range(2):
        assert api.post("/sessions/auc/orders", order_body(quantity="1")).status_code == 201
    assert_error(api.post("/sessions/auc/orders", order_body(quantity="1")), 409, "too_many_orders")
    services.pause_trading(users["org"], "auc", "drill")
    assert_error(api.post("/sessions/auc/orders", order_body(quantity="1"), who="bob"), 409, "trading_paused")
    assert Order.objects.count() == 2


def test_refused_cancels_say_why_and_write_nothing(api, auction):
    order = api.post("/sessions/auc/orders", order_body()).json()
    before = written()
    assert_error(api.post(f"/orders/{order['id']}/cancel", who="bob"), 403, "not_your_order")
    assert_error(api.post(f"/orders/{order['id']}/cancel", who="eve"), 403, "not_a_participant")
    assert_error(api.post("/orders/999999/cancel"), 404, "order_not_found")
    assert_error(api.post("/orders/01/cancel"), 422, "invalid_id")
    clock.set_time(T0 + dt.timedelta(seconds=10))  # its batch's cut has come, not recorded yet
    assert_error(api.post(f"/orders/{order['id']}/cancel"), 409, "batch_cut")
    assert written() == before
    services.clear_batch(None, "auc")  # nothing crosses: one batch, and it expired
    assert_error(api.post(f"/orders/{order['id']}/cancel"), 409, "order_closed")


def test_a_retried_order_is_placed_once(api, auction):
    first = api.post("/sessions/auc/orders", order_body(), **{"Idempotency-Key": "o-1"})
    again = api.post("/sessions/auc/orders", order_body(), **{"Idempotency-Key": "o-1"})
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Order.objects.count() == 1
    other = api.post("/sessions/auc/orders", order_body(quantity="2"), **{"Idempotency-Key": "o-1"})
    assert_error(other, 422, "idempotency_key_reused")
    cancel = f"/orders/{first.json()['id']}/cancel"
    assert api.post(cancel, **{"Idempotency-Key": "c-1"}).status_code == 200
    assert api.post(cancel, **{"Idempotency-Key": "c-1"}).json()["status"] == "cancelled"  # not order_closed
    assert Event.objects.filter(type="OrderCancelled").count() == 1


# ---------------------------------------------------------------- held, reserved, available


def test_holdings_show_held_reserved_and_available_per_leg(api, auction):
    api.post("/sessions/auc/orders", order_body())
    api.post("/sessions/auc/orders", order_body(quantity="2.5", get_leg="META"))
    mine = api.get("/sessions/auc/holdings").json()
    (row,) = mine["holdings"]
    assert row["username"] == "alice" and row["resting_orders"] == 2
    assert (row["held"]["AAPL"], row["reserved"]["AAPL"], row["available"]["AAPL"]) == (
        "25.000000",
        "12.500000",
        "12.500000",
    )
    assert row["reserved"]["NVDA"] == "0.000000" and row["available"]["NVDA"] == row["held"]["NVDA"]
    assert api.get("/sessions/auc/holdings", who="eve").json()["holdings"] == []
    everyone = api.get("/sessions/auc/holdings?all=true", who="org").json()["holdings"]
    assert [r["username"] for r in everyone] == ["alice", "bob", "mm", "mm2"]
    # The public allocations stay as they were: x only, no reservations (they would add up sealed orders).
    assert "reserved" not in api.get("/sessions/auc/allocations", who="eve").json()["holdings"][0]


# ---------------------------------------------------------------- the cut and the batches


def test_the_organiser_clears_and_everyone_reads_the_batch_with_its_fills(api, auction):
    ask = api.post("/sessions/auc/orders", order_body()).json()
    bid = api.post(
        "/sessions/auc/orders", order_body(give_leg="NVDA", get_leg="AAPL", quantity="4", limit_rate="2.45"), who="mm"
    ).json()
    before = written()
    assert_error(api.post("/sessions/auc/batches/clear"), 403, "not_organiser")
    assert_error(api.post("/sessions/auc/batches/clear", who="eve"), 403, "not_a_participant")
    assert written() == before
    clock.set_time(T0 + dt.timedelta(seconds=3))
    cleared = api.post("/sessions/auc/batches/clear", who="org", **{"Idempotency-Key": "cut-1"})
    assert cleared.status_code == 200, cleared.content
    cut = cleared.json()
    assert (cut["number"], cut["outcome"], cut["reason"], cut["orders"], cut["filled"]) == (1, "cleared", "", 2, 2)
    assert cut["cut_at"] == "2030-01-07T09:00:03Z"
    assert list(cut["prices"]) == ["AAPL", "NVDA", "META", "ORCL"] and cut["reference"]["AAPL"] == "190.000000"
    fills = {f["order"]: f for f in cut["fills"]}
    a, b = fills[ask["id"]], fills[bid["id"]]
    assert (a["username"], a["give_leg"], a["get_leg"]) == ("alice", "AAPL", "NVDA")
    assert a["given"] == b["received"] and a["received"] == b["given"]  # two legs: one's gift is the other's
    # One rate for both, p_AAPL / p_NVDA, within each limit.
    p = {leg: Decimal(v) for leg, v in cut["prices"].items()}
    assert Decimal(a["received"]) <= Decimal(a["given"]) * p["AAPL"] / p["NVDA"] + Decimal("0.000001")
    assert Decimal(a["received"]) >= Decimal(a["given"]) * Decimal("0.39")
    again = api.post("/sessions/auc/batches/clear", who="org", **{"Idempotency-Key": "cut-1"})
    assert again.json() == cut and Batch.objects.count() == 1  # a retried cut is not a second batch
    listed = api.get("/sessions/auc/batches", who="eve").json()  # fills are public once cleared
    assert listed == [cut]
    assert api.get("/sessions/auc/batches?after=1").json() == []
    mine = {o["id"]: o for o in api.get("/sessions/auc/orders").json()}
    assert mine[ask["id"]]["received"] == a["received"] and mine[ask["id"]]["status"] in ("filled", "expired")
    shown = api.get("/sessions/auc").json()
    assert shown["batches"] == 1 and shown["next_cut_at"] == "2030-01-07T09:00:13Z"


def test_a_batch_where_nothing_crossed_says_why(api, auction):
    api.post("/sessions/auc/orders", order_body(limit_rate="9"))
    clock.set_time(T0 + dt.timedelta(seconds=1))  # a book holds the orders placed before its cut
    cut = api.post("/sessions/auc/batches/clear", who="org").json()
    assert (cut["outcome"], cut["prices"], cut["fills"], cut["filled"], cut["orders"]) == ("none", {}, [], 0, 1)
    assert cut["reason"]


def test_clearing_an_rfq_session_or_a_paused_one_is_refused(api, users, auction):
    create_demo(users, "rfqs")
    assert_error(api.post("/sessions/rfqs/batches/clear", who="org"), 409, "not_batch")
    services.pause_trading(users["org"], "auc", "drill")
    assert_error(api.post("/sessions/auc/batches/clear", who="org"), 409, "trading_paused")
    assert not Batch.objects.exists()


# ---------------------------------------------------------------- sealed orders in the log


def log_of(api: Api, who: str) -> dict[int, dict]:
    """Each order's OrderPlaced / OrderCancelled as `who` reads the log, by order id and type."""
    events = api.get("/sessions/auc/events?limit=1000", who=who).json()["events"]
    return {(e["payload"]["order_id"], e["type"]): e for e in events if e["type"] in ("OrderPlaced", "OrderCancelled")}


def test_the_log_seals_others_orders_until_their_batch_clears(api, people, auction):
    ask = api.post("/sessions/auc/orders", order_body()).json()["id"]
    bid = api.post(
        "/sessions/auc/orders", order_body(give_leg="NVDA", get_leg="AAPL", quantity="4", limit_rate="2.45"), who="mm"
    ).json()["id"]
    gone = api.post("/sessions/auc/orders", order_body(quantity="1", limit_rate="9"), who="bob").json()["id"]
    api.post(f"/orders/{gone}/cancel", who="bob")
    whole = {k: e["payload"] for k, e in log_of(api, "org").items()}
    assert whole[(ask, "OrderPlaced")]["limit_rate"] == 39_000_000
    for who in ("org", "auditor"):  # those who see every order read the log whole
        assert {k: e["payload"] for k, e in log_of(api, who).items()} == whole
    outsider = log_of(api, "eve")
    assert all(e["payload"] == {"order_id": k[0], "sealed": True} for k, e in outsider.items())
    mine = log_of(api, "alice")
    assert mine[(ask, "OrderPlaced")]["payload"] == whole[(ask, "OrderPlaced")]  # the owner reads its own
    assert mine[(bid, "OrderPlaced")]["payload"] == {"order_id": bid, "sealed": True}
    assert log_of(api, "bob")[(gone, "OrderCancelled")]["payload"]["user_id"] == people["bob"].pk
    # The hashes stay those of the whole payloads: a sealed row is read with its owner's or an auditor's rights.
    assert {k: e["hash"] for k, e in outsider.items()} == {k: e["hash"] for k, e in log_of(api, "org").items()}
    clock.set_time(T0 + dt.timedelta(seconds=1))
    assert api.post("/sessions/auc/batches/clear", who="org").json()["filled"] == 2
    after = log_of(api, "eve")
    assert after[(ask, "OrderPlaced")]["payload"] == whole[(ask, "OrderPlaced")]  # cleared: revealed
    assert after[(bid, "OrderPlaced")]["payload"] == whole[(bid, "OrderPlaced")]
    for key in ((gone, "OrderPlaced"), (gone, "OrderCancelled")):  # never met the market: sealed for good
        assert after[key]["payload"] == {"order_id": gone, "sealed": True}
