"""People are named as the others will see them: a guest who joined by link as "Zoë Núñez" or "🚀 Rocket"
reads so on the floor, the blotter, the log, the monitor, the results, the CSVs and the API, never as the
derived username (`Zoe-Nunez`, `Rocket`), which stays where an account is meant. The name is part of the
record (ParticipantJoined's "name"), so replay rebuilds it; logs written before it replay to the username."""

from __future__ import annotations

import csv
import html
import importlib
import io
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from conftest import make_user
from ledger.models import Event
from markets import invite_rules, projections, services, tokens
from markets.models import Participant
from markets.push import panels, render, snapshot
from markets.selectors import event_json, export
from markets.services import invites
from markets.services import sessions as session_services

pytestmark = pytest.mark.django_db

ZOE, ROCKET, ADA = "Zoë Núñez", "🚀 Rocket", "Ada Lovelace"
PRICES = {"AAPL": "190.1", "NVDA": "480.2"}


def guests(users, sid: str = "cls", *, settle: bool = True) -> dict:
    """A class session: two guests by link (a trader and a maker), an account with a full name and one
    without, a trade between the guests; settled at PRICES unless told not to."""
    services.create_session(users["org"], session_id=sid, legs=["AAPL", "NVDA"], q=[100, 60])
    trader = invites.create_invite(users["org"], sid, "trader", 10)
    maker = invites.create_invite(users["org"], sid, "maker", 10)
    zoe = invites.join_by_invite(invite_rules.sign(trader.token_id), ZOE).user
    rocket = invites.join_by_invite(invite_rules.sign(maker.token_id), ROCKET).user
    ada = make_user("ada")
    ada.first_name, ada.last_name = "Ada", "Lovelace"
    ada.save()
    services.join_session(ada, sid, "trader")
    services.join_session(users["alice"], sid, "trader")
    services.open_session(users["org"], sid)
    rfq = services.request_rfq(zoe, sid, "AAPL", "NVDA", "10")
    services.accept_quote(zoe, services.provide_quote(rocket, rfq.id, "0.62").id)
    if settle:
        services.settle_session(users["org"], sid, prices=PRICES)
    return {"zoe": zoe, "rocket": rocket, "ada": ada, **users}


def page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode().partition("<main>")[2]  # the page, not the top bar's account


def api_get(user, path: str):
    return Client().get(f"/api/v1{path}", headers={"Authorization": f"Bearer {tokens.create_token(user)[1]}"})


def shown(name: str) -> str:
    """How a page shows a person: escaped, isolated, whole in its title (templatetags/people.py)."""
    escaped = html.escape(name)
    return f'<bdi class="person" title="{escaped}">{escaped}</bdi>'


def assert_named_as_typed(text: str) -> None:
    """Both guests appear by their names; neither derived username stands as a name in a cell or a line."""
    for name in (ZOE, ROCKET):
        assert shown(name) in text
    for derived in ("Zoe-Nunez", "Rocket"):
        assert f">{derived}<" not in text and f">{derived} as " not in text and f"with {derived}" not in text


def csv_rows(sid: str, table: str) -> list[dict[str, str]]:
    text, _ = export.csv_text(export.SessionExport(export.find_session(sid)).table(table))
    return list(csv.DictReader(io.StringIO(text, newline="")))


# ---------------------------------------------------------------- the record


def test_the_joined_event_records_the_name_people_see_and_replay_rebuilds_it(users):
    people = guests(users)
    joined = {e.data["user_id"]: e.data for e in Event.objects.filter(stream="session-cls", type="ParticipantJoined")}
    assert joined[people["zoe"].pk] == {"user_id": people["zoe"].pk, "username": "Zoe-Nunez", "name": ZOE,
                                        "role": "trader"}  # fmt: skip
    assert (joined[people["rocket"].pk]["username"], joined[people["rocket"].pk]["name"]) == ("Rocket", ROCKET)
    assert joined[people["ada"].pk]["name"] == ADA  # an account: its full name
    assert joined[users["alice"].pk]["name"] == "alice"  # no full name: the username
    names = dict(Participant.objects.filter(session_id="cls").values_list("username", "display_name"))
    assert names == {"org": "org", "Zoe-Nunez": ZOE, "Rocket": ROCKET, "ada": ADA, "alice": "alice"}
    assert projections.diff(projections.snapshot("cls"), projections.rebuild("cls")) == []
    out = StringIO()
    call_command("verify_ledger", "cls", stdout=out)
    assert "ok" in out.getvalue()
    if connection.vendor == "sqlite":
        call_command("verify_ledger", "--quick", "cls", stdout=StringIO())
    # The pro-rata order is the usernames' (what it always was): renaming nobody, it holds for old logs.
    allocation = Event.objects.get(stream="session-cls", type="InitialAllocationAssigned").data["holdings_by_id"]
    assert len(allocation) == 4


def test_renaming_the_account_later_changes_no_name_already_recorded(users):
    people = guests(users, settle=False)
    ada = people["ada"]
    ada.first_name, ada.last_name = "Augusta", "King"
    ada.save()
    assert Participant.objects.get(session_id="cls", user=ada).display_name == ADA
    assert projections.diff(projections.snapshot("cls"), projections.rebuild("cls")) == []


def test_a_log_written_before_names_replays_to_the_username(users, monkeypatch):
    """ParticipantJoined without "name" (as every log before it): the participant is shown by its
    username, replay gives the same, verify_ledger passes; the migration gave old rows exactly that."""

    def joined_before_names(user, role):
        return {"user_id": user.pk, "username": user.get_username(), "role": role}

    monkeypatch.setattr(session_services, "_joined", joined_before_names)
    guests(users, "old")
    assert all("name" not in e.data for e in Event.objects.filter(stream="session-old", type="ParticipantJoined"))
    names = dict(Participant.objects.filter(session_id="old").values_list("username", "display_name"))
    assert names == {u: u for u in ("org", "Zoe-Nunez", "Rocket", "ada", "alice")}
    assert projections.diff(projections.snapshot("old"), projections.rebuild("old")) == []
    call_command("verify_ledger", "old", stdout=StringIO())
    # Rows written before the column existed: the migration fills in what replay gives.
    Participant.objects.filter(session_id="old").update(display_name="")
    importlib.import_module("markets.migrations.0011_display_name").names_of_old_rows(apps, None)
    assert projections.diff(projections.snapshot("old"), projections.rebuild("old")) == []


# ---------------------------------------------------------------- where people are named


def test_the_floor_the_blotter_and_the_log_name_guests_as_typed(users):
    people = guests(users)
    snapshot.forget()
    floor = page(people["zoe"], reverse("markets:floor", args=["cls"]))
    assert_named_as_typed(floor)
    assert f"You are <strong>{shown(ZOE)}</strong>, trader." in floor
    assert f"{ZOE} as trader" in html.unescape(floor) and f"{ROCKET} as maker" in html.unescape(floor)  # the log
    trades = page(people["alice"], reverse("markets:trades", args=["cls"]))
    assert_named_as_typed(trades)
    log = html.unescape(page(people["alice"], reverse("markets:log", args=["cls"])))
    assert f"{ZOE} gives 10 AAPL for NVDA" in log and f"{ZOE} 10 AAPL → 6.2 NVDA with {ROCKET}" in log
    monitor = page(users["org"], reverse("markets:monitor", args=["cls"]))
    for name in (ZOE, ROCKET, ADA):
        assert shown(name) in monitor
    assert ">Zoe-Nunez<" not in monitor


def test_a_push_names_guests_as_typed(users):
    """The rows a trade pushes (blotter, holdings, log) and the board a quote pushes carry the names."""
    people = guests(users, settle=False)
    rfq = services.request_rfq(people["zoe"], "cls", "AAPL", "NVDA", "1")
    quote = services.provide_quote(people["rocket"], rfq.id, "0.6")
    events = [{"type": "event", "event": event_json(e)} for e in Event.objects.filter(stream="session-cls")][-2:]
    change = panels.delta([m["event"] for m in events])
    pushed = render.render_delta("cls", change, events)
    board = html.unescape(render.render_board_rows(pushed, None))
    assert shown(ZOE) in board and shown(ROCKET) in board
    services.accept_quote(people["zoe"], quote.id)
    trade = Event.objects.filter(stream="session-cls").order_by("-seq").first()
    message = {"type": "event", "event": event_json(trade)}
    pushed = render.render_delta("cls", panels.delta([message["event"]]), [message])
    text = html.unescape(pushed["html"])
    assert text.count(shown(ZOE)) >= 2 and text.count(shown(ROCKET)) >= 2  # the blotter's row, the holdings'
    assert f"{ZOE} 1 AAPL → 0.6 NVDA with {ROCKET}" in text  # the log's row


def test_a_name_is_escaped_and_a_long_one_keeps_its_whole_text_in_its_title(users):
    services.create_session(users["org"], session_id="esc", legs=["AAPL", "NVDA"], q=[10, 10])
    link = invite_rules.sign(invites.create_invite(users["org"], "esc", "trader", 5).token_id)
    hostile = '<b>x</b> & "q"'
    long = "Maximiliana Wolfeschlegelsteinhausenberg"  # 40 characters, the longest a link takes
    rtl = "مريم العربية"
    for name in (hostile, long, rtl):
        invites.join_by_invite(link, name)
    services.join_session(users["mm"], "esc", "maker")
    services.open_session(users["org"], "esc")
    snapshot.forget()
    floor = page(users["org"], reverse("markets:floor", args=["esc"]))
    assert shown(hostile) in floor and shown(long) in floor and shown(rtl) in floor
    assert "<b>x</b>" not in floor


# ---------------------------------------------------------------- exports and the API


def test_the_csvs_carry_the_name_beside_the_account(users):
    people = guests(users)
    [trade] = csv_rows("cls", "trades")
    assert (trade["taker_id"], trade["taker"], trade["taker_name"]) == (str(people["zoe"].pk), "Zoe-Nunez", ZOE)
    assert (trade["maker_id"], trade["maker"], trade["maker_name"]) == (str(people["rocket"].pk), "Rocket", ROCKET)
    holdings = {(r["user_id"], r["username"], r["name"]) for r in csv_rows("cls", "holdings")}
    assert (str(people["zoe"].pk), "Zoe-Nunez", ZOE) in holdings and (str(people["ada"].pk), "ada", ADA) in holdings
    payouts = {r["username"]: r["name"] for r in csv_rows("cls", "payouts")[:-1]}
    assert payouts == {"Zoe-Nunez": ZOE, "Rocket": ROCKET, "ada": ADA, "alice": "alice"}
    recon = {(r["username"], r["name"]) for r in csv_rows("cls", "reconciliation") if r["kind"] == "participant"}
    assert recon == {("Zoe-Nunez", ZOE), ("Rocket", ROCKET), ("ada", ADA), ("alice", "alice")}


def test_the_api_adds_the_name_beside_the_username(users):
    people = guests(users)
    alice = users["alice"]
    session = api_get(alice, "/sessions/cls").json()
    assert {(p["username"], p["name"]) for p in session["participants"]} >= {("Zoe-Nunez", ZOE), ("Rocket", ROCKET)}
    [trade] = api_get(alice, "/sessions/cls/trades").json()
    assert (trade["taker"], trade["taker_name"], trade["maker"], trade["maker_name"]) == (
        "Zoe-Nunez", ZOE, "Rocket", ROCKET)  # fmt: skip
    [rfq] = api_get(alice, "/sessions/cls/rfqs").json()
    assert (rfq["taker_name"], rfq["quotes"][0]["maker_name"]) == (ZOE, ROCKET)
    held = {h["username"]: h["name"] for h in api_get(alice, "/sessions/cls/allocations").json()["holdings"]}
    assert held["Zoe-Nunez"] == ZOE and held["ada"] == ADA
    paid = {p["username"]: p["name"] for p in api_get(alice, "/sessions/cls/payouts").json()["payouts"]}
    assert paid["Rocket"] == ROCKET
    results = {r["username"]: r["name"] for r in api_get(alice, "/sessions/cls/results").json()["results"]}
    assert results["Zoe-Nunez"] == ZOE and results["Rocket"] == ROCKET
    assert api_get(people["zoe"], "/me").json()["username"] == "Zoe-Nunez"  # an account is meant
    # The answer to an accept names both parties (the hot path reads them with the quote).
    services.create_session(users["org"], session_id="acc", legs=["AAPL", "NVDA"], q=[10, 10])
    link = invite_rules.sign(invites.create_invite(users["org"], "acc", "trader", 5).token_id)
    zed = invites.join_by_invite(link, "Zëd").user
    services.join_session(users["mm"], "acc", "maker")
    services.open_session(users["org"], "acc")
    rfq = services.request_rfq(zed, "acc", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "0.5")
    client = Client()
    answer = client.post(
        f"/api/v1/quotes/{quote.id}/accept", headers={"Authorization": f"Bearer {tokens.create_token(zed)[1]}"}
    ).json()
    assert (answer["taker"], answer["taker_name"], answer["maker_name"]) == ("Zed", "Zëd", "mm")
