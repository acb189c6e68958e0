"""Corporate actions at the edges: `POST /sessions/{id}/actions` (the organiser schedules; every refusal is
JSON {"code","message"} with the service's status and writes nothing; idempotent retries), `GET` (whoever
may see the session: each action with what it did once applied), the admin's session page and list, and
the export: actions.csv, the payouts' cash (CSV and API), holdings.csv and reconciliation.csv across an
action."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import services, tokens
from markets.models import CorporateAction
from markets.tests.test_actions import CUT, PRICES, T0, U, at_the_cut, session
from markets.tests.test_admin import admin_client, organiser  # noqa: F401  (fixtures)
from markets.tests.test_api import Api, assert_error
from markets.tests.test_export import table

pytestmark = pytest.mark.django_db

WHEN = "2030-06-07T13:05:00Z"  # CUT


@pytest.fixture
def api(client, users) -> Api:
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


def schedule(api: Api, body: dict, who: str = "org", sid: str = "ca", **headers):
    return api.post(f"/sessions/{sid}/actions", {"effective_at": WHEN} | body, who=who, **headers)


def written() -> tuple[int, int]:
    return Event.objects.count(), CorporateAction.objects.count()


# ---------------------------------------------------------------- POST and GET


def test_the_organiser_schedules_a_split_and_everyone_who_sees_the_session_reads_what_it_did(api, users):
    session(users)
    made = schedule(api, {"kind": "split", "leg": "nvda", "ratio": "10/1"})
    assert made.status_code == 201, made.content
    body = made.json()
    assert {k: body[k] for k in ("number", "kind", "leg", "params", "status", "applied_at", "result")} == {
        "number": 1,
        "kind": "split",
        "leg": "NVDA",
        "params": {"ratio": "10/1"},
        "status": "scheduled",
        "applied_at": None,
        "result": None,
    }
    assert dt.datetime.fromisoformat(body["effective_at"]) == CUT
    assert api.get("/sessions/ca/actions", who="eve").json() == [body]  # a public session: any viewer
    at_the_cut()
    (applied,) = api.get("/sessions/ca/actions", who="alice").json()
    assert applied["status"] == "applied" and applied["applied_at"]
    assert applied["result"] == {
        "q_before": "60.000000",
        "q_after": "600.000000",
        "cash_total": "0.000000000000",
        "leftover": 0,
    }


def test_a_reverse_split_lists_its_cash_in_lieu_and_leftover_units(api, users):
    session(users, q=[100, 61, 80, 120])
    assert schedule(api, {"kind": "split", "leg": "NVDA", "ratio": "1/7"}).status_code == 201
    at_the_cut()
    result = api.get("/sessions/ca/actions").json()[0]["result"]
    recorded = CorporateAction.objects.get().result
    cash = sum(Decimal(v) for v in recorded["cash_by_id"].values())
    assert result["q_before"] == "61.000000" and result["q_after"] == "8.714285"  # floor(61 / 7, 6 dp)
    assert Decimal(result["cash_total"]) == cash > 0 and result["leftover"] == len(recorded["leftover"])


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"kind": "dividend", "leg": "AAPL", "amount": 0.25}, {"amount": "0.250000"}),
        ({"kind": "merger", "leg": "ORCL", "into": "aapl", "ratio": 0.75}, {"into": "AAPL", "ratio": "3/4"}),
        ({"kind": "merger", "leg": "META", "cash": "520"}, {"cash": "520.000000"}),
        ({"kind": "rename", "leg": "META", "to": "FB"}, {"to": "FB"}),
        ({"kind": "split", "leg": "NVDA", "ratio": 2}, {"ratio": "2/1"}),
    ],
)
def test_each_kind_is_scheduled_with_its_parameters_read_exactly(api, users, body, params):
    session(users)
    response = schedule(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["params"] == params == CorporateAction.objects.get().params


@pytest.mark.parametrize(
    ("body", "who", "status", "code"),
    [
        ({"kind": "split", "leg": "NVDA", "ratio": "0"}, "org", 422, "invalid_ratio"),
        ({"kind": "split", "leg": "NVDA", "ratio": "1/1"}, "org", 422, "invalid_ratio"),
        ({"kind": "split", "leg": "NVDA", "ratio": "ten"}, "org", 422, "invalid_ratio"),
        ({"kind": "split", "leg": "NVDA", "ratio": None}, "org", 422, "invalid_ratio"),
        ({"kind": "split", "leg": "NVDA", "ratio": "2/1"}, "alice", 403, "not_organiser"),
        ({"kind": "split", "leg": "TSLA", "ratio": "2/1"}, "org", 422, "unknown_leg"),
        ({"kind": "spinoff", "leg": "NVDA", "ratio": "1/3"}, "org", 422, "invalid_action"),
        ({"kind": "dividend", "leg": "AAPL", "ratio": "2/1"}, "org", 422, "invalid_action"),
        ({"kind": "merger", "leg": "AAPL", "cash": "1", "into": "ORCL"}, "org", 422, "invalid_action"),
        ({"kind": "merger", "leg": "AAPL", "into": "AAPL", "ratio": "1"}, "org", 422, "same_leg"),
        ({"kind": "dividend", "leg": "AAPL", "amount": "-1"}, "org", 422, "invalid_number"),
        ({"kind": "split", "leg": "NVDA", "ratio": "2/1", "effective_at": "tomorrow"}, "org", 422, "invalid_time"),
        (
            {"kind": "split", "leg": "NVDA", "ratio": "2/1", "effective_at": "2030-06-07T13:05"},
            "org",
            422,
            "invalid_time",
        ),
        ({"kind": "split", "leg": "NVDA", "ratio": "2/1", "effective_at": 1906888000}, "org", 422, "invalid_time"),
        (
            {"kind": "split", "leg": "NVDA", "ratio": "2/1", "effective_at": "2030-06-07T12:59Z"},
            "org",
            422,
            "invalid_time",
        ),
        ({"kind": "split", "leg": "NVDA", "new_leg": "X"}, "org", 422, "invalid_request"),
        ({"leg": "NVDA", "ratio": "2/1"}, "org", 422, "invalid_request"),
    ],
)
def test_a_bad_action_is_refused_as_json_with_its_code_and_nothing_is_written(api, users, body, who, status, code):
    session(users)
    before = written()
    assert_error(schedule(api, body, who=who), status, code)
    assert written() == before


def test_an_unknown_or_unseen_session_and_no_token_are_refused(api, users):
    session(users)
    create_demo(users, "closed", visibility="participants")
    before = written()
    split = {"kind": "split", "leg": "NVDA", "ratio": "2/1"}
    assert_error(schedule(api, split, sid="nosuch"), 404, "session_not_found")
    assert_error(api.get("/sessions/nosuch/actions"), 404, "session_not_found")
    assert_error(api.get("/sessions/closed/actions", who="eve"), 403, "not_visible")
    assert_error(api.get("/sessions/ca/actions", who=None), 401, "unauthenticated")
    assert_error(schedule(api, split, who=None), 401, "unauthenticated")
    assert written() == before


def test_a_retry_with_the_same_idempotency_key_schedules_once(api, users):
    session(users)
    body = {"kind": "dividend", "leg": "AAPL", "amount": "0.25"}
    first = schedule(api, body, **{"Idempotency-Key": "div-1"})
    again = schedule(api, body, **{"Idempotency-Key": "div-1"})
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and CorporateAction.objects.count() == 1


# ---------------------------------------------------------------- the admin


def test_the_admin_lists_the_actions_on_the_session_page_and_never_edits_them(admin_client, users):  # noqa: F811
    session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    services.schedule_action(users["org"], "ca", "dividend", "AAPL", CUT + dt.timedelta(hours=1), amount="0.25")
    at_the_cut()
    page = admin_client.get(reverse("admin:markets_session_change", args=["ca"])).content.decode()
    assert "Corporate actions" in page or "corporate action" in page.lower()
    assert "ratio=10/1" in page and "amount=0.250000" in page
    assert "q 60.000000 -&gt; 600.000000, cash 0.000000000000" in page
    listed = admin_client.get(reverse("admin:markets_corporateaction_changelist") + "?q=ca")
    assert listed.status_code == 200 and "ratio=10/1" in listed.content.decode()
    assert admin_client.get(reverse("admin:markets_corporateaction_add")).status_code == 403


# ---------------------------------------------------------------- the export


def test_actions_csv_the_payouts_cash_and_the_reconciliation_across_a_split_and_a_dividend(api, users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    services.schedule_action(users["org"], "ca", "dividend", "AAPL", CUT, amount="0.25")
    services.schedule_action(users["org"], "ca", "rename", "META", CUT + dt.timedelta(hours=1), to="FB")
    at_the_cut()
    rows = table("actions", "ca")
    assert [(r["number"], r["kind"], r["leg"], r["params"], r["status"]) for r in rows] == [
        ("1", "split", "NVDA", "ratio=10/1", "applied"),
        ("2", "dividend", "AAPL", "amount=0.250000", "applied"),
        ("3", "rename", "META", "to=FB", "scheduled"),
    ]
    assert (rows[0]["q_before"], rows[0]["q_after"], rows[0]["cash_total"]) == ("60.000000", "600.000000",
                                                                                 "0.000000000000")  # fmt: skip
    assert (rows[1]["q_before"], rows[1]["q_after"], rows[1]["cash_total"]) == ("100.000000", "100.000000",
                                                                                 "25.000000000000")  # fmt: skip
    assert rows[2]["applied_at"] == rows[2]["q_before"] == rows[2]["cash_total"] == ""
    assert rows[0]["effective_at"].startswith("2030-06-07T13:05:00") and rows[0]["applied_seq"]
    # holdings.csv follows the split: alice's 15 NVDA are 150 after it
    held = [r for r in table("holdings", "ca") if r["username"] == "alice" and r["leg"] == "NVDA"]
    assert held[-1]["event"] == "CorporateActionApplied" and held[-1]["quantity"] == "150.000000"

    prices = {leg: str(p // U) for leg, p in PRICES.items()} | {"NVDA": "120"}
    clock.set_time(T0 + dt.timedelta(hours=2))
    services.settle_session(users["org"], "ca", prices=prices)
    payouts = table("payouts", "ca")
    alice = next(r for r in payouts if r["username"] == "alice")
    assert alice["cash"] == "6.250000000000" and alice["payout"] == "37506.250000000000"
    assert payouts[-1]["name"] == "total" and payouts[-1]["cash"] == "25.000000000000"
    api_payouts = {p["username"]: p for p in api.get("/sessions/ca/payouts").json()["payouts"]}
    assert api_payouts["alice"]["cash"] == "6.250000000000" and api_payouts["alice"]["amount"] == alice["payout"]
    recon = table("reconciliation", "ca")
    assert all(r["equal"] == "true" for r in recon if r["kind"] in ("participant", "total", "recorded"))
    (total,) = [r for r in recon if r["kind"] == "total"]
    assert Decimal(total["expected"]) == Decimal("150000") + Decimal("25")  # q . S + the dividends paid in
    cash_lines = [r for r in recon if r["kind"] == "cash"]
    assert cash_lines[-1]["x_i*S_t2"] == "25.000000000000" and len(cash_lines) == 5  # 4 holders and the pool
