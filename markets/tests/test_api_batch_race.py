"""Two programs racing the organiser's cut over HTTP, each request on its own thread and connection against
the real database file: one places orders, the other cancels its resting ones while the organiser clears.
Every answer is a success or a coded refusal, the batch is cut once, each order is in that batch's book or
in none, a cancel either won before the cut or is refused (409 `batch_cut`), the API's reads agree with the
log, and the ledger verifies."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import pytest
from django.test import Client

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, domain, services, tokens
from markets.tests.test_batch_service import T0, tick
from markets.tests.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def call(key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list]:
    client = Client()
    headers = {"Authorization": f"Bearer {key}"}
    if method == "GET":
        response = client.get(f"/api/v1{path}", headers=headers)
    else:
        data = "" if body is None else json.dumps(body)
        response = client.post(f"/api/v1{path}", data=data, content_type="application/json", headers=headers)
    return response.status_code, response.json()


def test_programs_placing_and_cancelling_around_a_clear_land_in_one_batch_or_none(users):
    clock.set_time(T0)
    create_demo(users, "race", mechanism="batch", batch_seconds=10, max_orders=50)
    tick("race", T0)
    keys = {name: tokens.create_token(users[name])[1] for name in ("org", "alice", "mm")}
    early = [
        call(keys["mm"], "POST", "/sessions/race/orders", {"give_leg": "NVDA", "get_leg": "AAPL", "quantity": "0.5",
                                                            "limit_rate": "2.3", "gtc": True})[1]["id"]
        for _ in range(4)
    ]  # fmt: skip
    clock.set_time(T0 + dt.timedelta(seconds=5))
    before = call(keys["alice"], "POST", "/sessions/race/orders", {"give_leg": "AAPL", "get_leg": "NVDA",
                                                                   "quantity": "1", "limit_rate": "0.39"})[1]["id"]  # fmt: skip
    clock.set_time(T0 + dt.timedelta(seconds=10))  # the cut instant: every racer acts now
    plan = ["clear"] + ["place"] * 5 + ["cancel"] * 4

    def act(i: int):
        if plan[i] == "clear":
            return call(keys["org"], "POST", "/sessions/race/batches/clear")
        if plan[i] == "place":
            body = {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1", "limit_rate": "0.39", "good_for": 2}
            return call(keys["alice"], "POST", "/sessions/race/orders", body)
        return call(keys["mm"], "POST", f"/orders/{early[i - 6]}/cancel")

    results = list(zip(plan, run_together(len(plan), act), strict=True))
    assert all(kind == "ok" for _, (kind, _) in results), results
    answers = [(what, value) for what, (_, value) in results]
    for what, (status, body) in answers:
        expected = {"clear": {200}, "place": {201}, "cancel": {200, 409}}[what]
        assert status in expected, (what, status, body)
        if status == 409:
            assert body["code"] == "batch_cut" and set(body) == {"code", "message"}
    (cut,) = [body for what, (status, body) in answers if what == "clear"]
    events = list(Event.objects.filter(stream="session-race").order_by("seq"))
    (cleared,) = [e for e in events if e.type == "BatchCleared"]
    # The book: every order placed before the cut and not cancelled before it, once; the ones placed at the
    # cut instant wait for the next batch.
    cancelled_before = {e.data["order_id"] for e in events if e.type == "OrderCancelled" and e.seq < cleared.seq}
    assert cancelled_before == set()  # from the cut instant a cancel is refused until the cut is recorded
    assert sorted(cleared.data["orders"]) == sorted([*early, before]) and cut["orders"] == len(early) + 1
    placed = [body["id"] for what, (status, body) in answers if what == "place"]
    assert len(placed) == 5 and not set(placed) & set(cleared.data["orders"])
    won = [early[i - 6] for i, (what, (status, _)) in enumerate(answers) if what == "cancel" and status == 200]
    for e in events:
        if e.type == "OrderCancelled":
            assert e.seq > cleared.seq and e.data["order_id"] in won
    # What the API reads agrees with the log: one batch, its fills, everyone's orders and reservations.
    status, batches = call(keys["alice"], "GET", "/sessions/race/batches")
    assert status == 200 and [b["number"] for b in batches] == [1] and batches[0] == cut
    status, everyone = call(keys["org"], "GET", "/sessions/race/orders?all=true")
    by_id = {o["id"]: o for o in everyone}
    assert all(by_id[oid]["status"] == "resting" for oid in placed)
    assert all(by_id[oid]["status"] == "cancelled" for oid in won)
    reserved: dict[tuple[str, str], int] = defaultdict(int)
    for o in everyone:
        if o["status"] == "resting":
            reserved[(o["username"], o["give_leg"])] += int(Decimal(o["rest"]) * 10**domain.QTY_DP)
    status, holdings = call(keys["org"], "GET", "/sessions/race/holdings?all=true")
    for row in holdings["holdings"]:
        for leg, text in row["reserved"].items():
            assert Decimal(text) * 10**domain.QTY_DP == reserved[(row["username"], leg)], (row["username"], leg)
    report = audit.verify_session("race")
    assert report.ok, report.problems
    assert services.clear_batch(None, "race") is None  # the cut is recorded: nothing more is due now
