"""Bounded shorting in the export and the results: margin.csv (each holder's W after every event that moved
it, at the oracle's prices then, with the tick ids), holdings.csv following auto-deleveraging, the
settlement haircut line by line in reconciliation.csv and in the results API; who may download margin.csv
(the organiser, staff and auditors: the holdings rule) on both edges; and a session without shorting
exporting exactly the tables it always did."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from decimal import Decimal

import pytest
from django.test import Client

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import projections, services, tokens
from markets.models import Session
from markets.selectors import export
from markets.tests.test_margin import PRICES, tick, trade

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 1, 15, 0, 0, tzinfo=dt.UTC)
SETTINGS = {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"}
FAR = {"AAPL": "400", "NVDA": "50", "META": "80", "ORCL": "20"}  # AAPL x4: alice's 20 short sinks her


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def squeezed(users) -> Session:
    """alice goes 20 AAPL short (mm 24 ORCL short); AAPL jumps to 250: alice is liquidated and deleveraged."""
    clock.set_time(T0)
    create_demo(users, **SETTINGS)
    tick("demo", PRICES, at(0))
    clock.set_time(at(1))
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")
    tick("demo", {"AAPL": 250}, at(2))
    clock.set_time(at(3))
    assert services.liquidate_due_sessions()
    return Session.objects.get(id="demo")


def rows_of(name: str, viewer=export.EVERYTHING) -> list[dict[str, str]]:
    text, _ = export.csv_text(export.SessionExport(Session.objects.get(id="demo"), viewer).table(name))
    return list(csv.DictReader(io.StringIO(text, newline="")))


def api_get(user, path: str):
    headers = {"Authorization": f"Bearer {tokens.create_token(user, name='tests')[1]}"}
    return Client().get(f"/api/v1{path}", headers=headers)


def test_margin_csv_has_each_holders_w_after_every_event_that_moved_it(users, squeezed):
    rows = rows_of("margin")
    alice, mm = str(users["alice"].pk), str(users["mm"].pk)
    events = [(r["event"], r["user_id"]) for r in rows]
    assert [e for e, _ in events[:4]] == ["InitialAllocationAssigned"] * 4
    assert {u for e, u in events if e == "InitialAllocationAssigned"} == {
        str(users[n].pk) for n in ("alice", "bob", "mm", "mm2")
    }
    assert [u for e, u in events if e == "TradeExecuted"] == [alice, mm]
    traded = next(r for r in rows if r["event"] == "TradeExecuted" and r["user_id"] == alice)
    # W = (15x50 + 20x80 + 84x20) x 0.85 - 20x100 x 1.15, requirement 0.05 x 2000, at the first ticks
    assert (traded["W"], traded["requirement"], traded["status"], traded["binding_leg"]) == (
        "1125.500000000000",
        "100.000000000000",
        "ok",
        "AAPL",
    )
    first = {t.symbol: str(t.id) for t in tick_rows(at(0))}
    assert {leg: traded[f"tick:{leg}"] for leg in PRICES} == first
    assert traded["price:AAPL"] == "100.000000"
    liquidated = next(r for r in rows if r["event"] == "PositionLiquidated")
    recorded = Event.objects.get(type="PositionLiquidated").data
    assert liquidated["user_id"] == alice and liquidated["status"] == "liquidated"
    assert (liquidated["W"], liquidated["requirement"]) == (recorded["W"], recorded["requirement"])
    assert liquidated["price:AAPL"] == "250.000000" and liquidated["tick:AAPL"] == str(recorded["ticks"]["AAPL"])
    adl = [r for r in rows if r["event"] == "AutoDeleveraged"]
    moved = Event.objects.get(type="AutoDeleveraged").data["deltas_by_id"]
    assert {r["user_id"] for r in adl} == {u for u, row in moved.items() if any(row)}
    after = next(r for r in adl if r["user_id"] == alice)
    assert after["status"] == "liquidated" and after["binding_leg"] == ""  # no short left, still marked


def tick_rows(when: dt.datetime):
    from oracle.models import Tick

    return Tick.objects.filter(session_id="demo", at=when)


def test_holdings_csv_follows_auto_deleveraging(users, squeezed):
    rows = rows_of("holdings")
    last = max(int(r["seq"]) for r in rows)
    final = {}
    for r in rows:
        if int(r["seq"]) == last:
            final.setdefault(int(r["user_id"]), []).append(int(Decimal(r["quantity"]) * 10**6))
    assert next(r["event"] for r in rows if int(r["seq"]) == last) == "AutoDeleveraged"
    assert final == projections.holdings_by_user("demo")


def test_a_haircut_shows_line_by_line_in_reconciliation_and_in_the_results(users):
    clock.set_time(T0)
    create_demo(users, **SETTINGS)
    tick("demo", PRICES, at(0))
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")  # alice: [-20, 15, 20, 84]
    clock.set_time(at(10))
    services.settle_session(users["org"], "demo", prices=FAR)
    haircut = Event.objects.get(type="SessionSettled").data["haircut"]
    rows = rows_of("reconciliation")
    kinds = [r["kind"] for r in rows]
    assert {"gross", "haircut", "deficit", "factor"} <= set(kinds)
    assert all(r["equal"] == "true" for r in rows if r["equal"]), [r for r in rows if r["equal"] == "false"]
    deficit = next(r for r in rows if r["kind"] == "deficit")
    factor = next(r for r in rows if r["kind"] == "factor")
    assert (deficit["payout"], factor["payout"]) == (haircut["deficit"], haircut["factor"])
    alice = str(users["alice"].pk)
    gross = Decimal(next(r["payout"] for r in rows if r["kind"] == "gross" and r["user_id"] == alice))
    cut = Decimal(next(r["payout"] for r in rows if r["kind"] == "haircut" and r["user_id"] == alice))
    paid = Decimal(next(r["payout"] for r in rows if r["kind"] == "participant" and r["user_id"] == alice))
    assert gross == Decimal("-3970") and paid == 0 and gross + cut == paid  # -20x400 + 15x50 + 20x80 + 84x20
    results = api_get(users["alice"], "/sessions/demo/results").json()
    assert results["haircut"] == {"deficit": Decimal(haircut["deficit"]).__format__("f"), "factor": haircut["factor"]}
    by_user = {r["user_id"]: r for r in results["results"]}
    for user, before in haircut["gross_by_id"].items():
        row = by_user[int(user)]
        assert Decimal(row["gross"]) == Decimal(before)
        assert Decimal(row["gross"]) + Decimal(row["haircut"]) == Decimal(row["payout"]) >= 0
    assert results["totals"]["exact"] is True


def test_margin_csv_is_for_the_organiser_staff_and_auditors_on_both_edges(users, squeezed):
    assert api_get(users["org"], "/sessions/demo/export/margin.csv").status_code == 200
    refused = api_get(users["alice"], "/sessions/demo/export/margin.csv")
    assert refused.status_code == 403 and refused.json()["code"] == "not_organiser"
    floor = Client()
    floor.force_login(users["alice"])
    assert floor.get("/sessions/demo/export/margin.csv").status_code == 403
    floor.force_login(users["org"])
    page = floor.get("/sessions/demo/export/margin.csv")
    assert page.status_code == 200 and page.content.decode().startswith("seq,at,event,user_id")
    with zipfile.ZipFile(io.BytesIO(api_get(users["org"], "/sessions/demo/export.zip").content)) as archive:
        assert "margin.csv" in archive.namelist()
    with zipfile.ZipFile(io.BytesIO(api_get(users["alice"], "/sessions/demo/export.zip").content)) as archive:
        assert "margin.csv" not in archive.namelist()


def test_a_session_without_shorting_exports_exactly_the_tables_it_always_did(users):
    create_demo(users)
    trade(users, "alice", "mm", "AAPL", "NVDA", "10", "0.62")
    services.settle_session(users["org"], "demo", prices={"AAPL": "1", "NVDA": "2", "META": "3", "ORCL": "4"})
    session = Session.objects.get(id="demo")
    assert export.available(session) == list(export.TABLES)
    snapshot = export.SessionExport(session)
    assert export.zip_bytes(snapshot, export.available(session)) == export.zip_bytes(snapshot, export.TABLES)
    assert {r["kind"] for r in rows_of("reconciliation")} == {"leg", "participant", "basket", "total", "recorded"}
    refused = api_get(users["org"], "/sessions/demo/export/margin.csv")
    assert refused.status_code == 409 and refused.json()["code"] == "not_shorting"
    results = api_get(users["alice"], "/sessions/demo/results").json()
    assert results["haircut"] is None and {r["gross"] for r in results["results"]} == {None}


def test_manage_py_export_writes_margin_csv_for_a_shorting_session_only(users, squeezed, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    call_command("export", "demo", "--out", str(tmp_path / "all"), stdout=out)
    assert (tmp_path / "all" / "margin.csv").read_text().startswith("seq,at,event,user_id")
    assert "margin.csv" in out.getvalue() and "margin.csv: skipped" not in out.getvalue()
    create_demo(users, "plain")
    plain = io.StringIO()
    call_command("export", "plain", "--out", str(tmp_path / "plain"), stdout=plain)
    assert not (tmp_path / "plain" / "margin.csv").exists() and "margin" not in plain.getvalue()
    with pytest.raises(CommandError, match="does not allow shorting"):
        call_command("export", "plain", "--table", "margin", "--out", str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_the_floor_refuses_margin_csv_of_a_session_without_shorting_with_a_page(users):
    create_demo(users)
    floor = Client()
    floor.force_login(users["org"])
    page = floor.get("/sessions/demo/export/margin.csv")
    assert page.status_code == 409 and "does not allow shorting" in page.content.decode()
