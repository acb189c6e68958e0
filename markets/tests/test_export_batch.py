"""The export of a batch session: orders.csv and fills.csv read from the log as of the export's cut,
holdings.csv and the reconciliation moved by the batches' fills, and the seal: a viewer who does not see
every order reads others' resting and cancelled orders sealed in events.csv and orders.csv, while the
organiser's (and the CLI's) log still re-hashes with the chain."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from conftest import create_demo, make_user
from ledger import chain, clock
from markets import domain, services, tokens
from markets.models import Fill, Holding, Order
from markets.selectors import export
from markets.tests.test_batch_service import PRICES, T0, tick

pytestmark = pytest.mark.django_db


@pytest.fixture
def day(users):
    """A batch session's day: two cuts that trade, a gtc order resting on, one cancelled, one left resting."""
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", batch_seconds=10)
    tick("auc", T0)
    ids = {
        "ask": services.place_order(users["alice"], "auc", "AAPL", "NVDA", "10", "0.39").id,
        "part": services.place_order(users["bob"], "auc", "AAPL", "NVDA", "5", "0.395", good_for=3).id,
        "bid": services.place_order(users["mm"], "auc", "NVDA", "AAPL", "4", "2.45").id,
        "kept": services.place_order(users["mm2"], "auc", "NVDA", "META", "2", "1.5", gtc=True).id,
        "gone": services.place_order(users["mm2"], "auc", "ORCL", "META", "1", "0.2").id,
    }
    services.cancel_order(users["mm2"], ids["gone"])
    for k in (1, 2):
        clock.set_time(T0 + dt.timedelta(seconds=10 * k))
        tick("auc", clock.now(), {**PRICES, "NVDA": PRICES["NVDA"] + 1_000_000 * k})
        services.clear_batch(None, "auc")
    clock.set_time(T0 + dt.timedelta(seconds=21))
    ids["late"] = services.place_order(users["alice"], "auc", "META", "NVDA", "3", "0.9").id  # rests, sealed
    return ids


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def table(name: str, viewer=export.EVERYTHING) -> list[dict[str, str]]:
    return rows_of(export.csv_text(export.SessionExport(export.find_session("auc"), viewer).table(name))[0])


def api_csv(user, name: str) -> str:
    headers = {"Authorization": f"Bearer {tokens.create_token(user, name='x')[1]}"}
    response = Client().get(f"/api/v1/sessions/auc/export/{name}.csv", headers=headers)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_orders_csv_lists_every_order_as_the_log_has_it(day):
    rows = {int(r["id"]): r for r in table("orders")}
    assert sorted(rows) == sorted(day.values())
    for order in Order.objects.filter(session_id="auc").select_related("participant"):
        row = rows[order.id]  # the log's reading agrees with the projection, field for field
        assert (row["status"], row["rest"], row["quantity"], row["limit_rate"]) == (
            order.status,
            domain.qty_str(order.rest),
            domain.qty_str(order.quantity),
            domain.rate_str(order.limit_rate),
        )
        assert row["batches_left"] == ("" if order.batches_left is None else str(order.batches_left))
        assert row["username"] == order.participant.username and row["sealed"] == "false"
        assert row["seq"] == str(order.seq)
        received = sum(f.received for f in Fill.objects.filter(order=order))
        assert row["received"] == domain.qty_str(received)
        assert row["given"] == domain.qty_str(order.quantity - order.rest)
    assert rows[day["kept"]]["lifetime"] == "gtc" and rows[day["part"]]["lifetime"] == "3"
    assert rows[day["gone"]]["status"] == "cancelled" and rows[day["late"]]["status"] == "resting"


def test_fills_csv_has_every_fill_with_its_batchs_prices(day):
    rows = table("fills")
    fills = Fill.objects.filter(batch__session_id="auc").select_related("batch", "participant")
    assert len(rows) == fills.count() > 0
    by_key = {(r["batch"], r["order_id"]): r for r in rows}
    moved = defaultdict(int)
    for f in fills:
        row = by_key[(str(f.batch.number), str(f.order_id))]
        assert (row["given"], row["received"], row["rest"]) == tuple(map(domain.qty_str, (f.given, f.received, f.rest)))
        assert row["username"] == f.participant.username
        for leg in ("AAPL", "NVDA", "META", "ORCL"):
            assert row[f"price:{leg}"] == domain.price_str(f.batch.prices[leg])
        moved[f.give_leg] -= f.given
        moved[f.get_leg] += f.received
    assert all(v == 0 for v in moved.values())  # per leg, what was given was received


def test_holdings_and_the_reconciliation_include_what_batches_moved(users, day):
    clock.set_time(T0 + dt.timedelta(seconds=30))
    services.settle_session(users["org"], "auc", prices={"AAPL": "190", "NVDA": "477", "META": "350", "ORCL": "100"})
    last = {}
    for r in table("holdings"):
        last[(r["username"], r["leg"])] = r["quantity"]
    for h in Holding.objects.filter(session_id="auc").select_related("participant"):
        assert last[(h.participant.username, h.leg)] == domain.qty_str(h.qty)
    recon = table("reconciliation")
    assert {r["equal"] for r in recon if r["kind"] in ("participant", "total", "recorded")} == {"true"}
    batch_seqs = {str(s) for s in Fill.objects.values_list("batch__seq", flat=True)}
    alice_aapl = next(r for r in recon if r["kind"] == "leg" and r["username"] == "alice" and r["leg"] == "AAPL")
    assert batch_seqs & set(alice_aapl["seqs"].split())  # the batch that moved it is named


@pytest.fixture
def auditor(users):
    user = make_user("auditor")
    user.user_permissions.add(Permission.objects.get(codename="view_any_session"))
    return user


def test_an_outsider_reads_others_sealed_orders_sealed_the_owner_its_own_whole(users, day, auditor):
    whole = {int(r["id"]): r for r in table("orders")}
    sealed = {oid for oid, r in whole.items() if r["status"] in ("resting", "cancelled")}  # as of the cut
    assert {day["kept"], day["gone"], day["late"]} <= sealed and day["ask"] not in sealed
    for user in (users["org"], auditor):
        assert (
            api_csv(user, "orders")
            == export.csv_text(export.SessionExport(export.find_session("auc")).table("orders"))[0]
        )
    outsider = {int(r["id"]): r for r in rows_of(api_csv(users["eve"], "orders"))}
    for oid, row in outsider.items():
        if oid in sealed:
            assert row["sealed"] == "true" and row["user_id"] == row["quantity"] == row["limit_rate"] == ""
            assert (row["status"], row["seq"], row["placed_at"]) == (
                whole[oid]["status"],
                whole[oid]["seq"],
                whole[oid]["placed_at"],
            )
        else:  # filled or expired through a batch: revealed
            assert row == whole[oid]
    mine = {int(r["id"]): r for r in rows_of(api_csv(users["alice"], "orders"))}
    assert mine[day["late"]] == whole[day["late"]]  # her own, resting
    assert mine[day["kept"]]["sealed"] == "true"
    on_floor = Client()
    on_floor.force_login(users["eve"])
    floor = on_floor.get(reverse("markets:export_table", args=["auc", "orders"])).content.decode()
    assert floor == api_csv(users["eve"], "orders")  # the same rule on both edges


def test_the_log_seals_others_orders_for_an_outsider_and_rehashes_whole_for_the_organiser(users, day):
    whole = table("events")
    prev = chain.GENESIS
    for r in whole:  # the organiser's (and the CLI's) log re-hashes with the chain
        assert chain.compute_hash(prev, r["stream"], int(r["version"]), r["type"], r["at"], r["data"]) == r["hash"]
        prev = r["hash"]
    assert rows_of(api_csv(users["org"], "events")) == whole
    outsider = rows_of(api_csv(users["eve"], "events"))
    assert [r["hash"] for r in outsider] == [r["hash"] for r in whole]
    sealed_rows = [r for r in outsider if '"sealed":true' in r["data"]]
    hidden = {int(r["id"]) for r in table("orders") if r["status"] in ("resting", "cancelled")}
    assert {json.loads(r["data"])["order_id"] for r in sealed_rows} == hidden
    for r in sealed_rows:
        assert r["type"] in ("OrderPlaced", "OrderCancelled") and r["actor_user_id"] == ""
        assert set(json.loads(r["data"])) == {"order_id", "sealed"}
    placed = {json.loads(r["data"])["order_id"]: r for r in whole if r["type"] == "OrderPlaced"}
    assert placed[day["ask"]]["actor_user_id"] == str(users["alice"].pk)
    revealed = {json.loads(r["data"])["order_id"]: r for r in outsider if r["type"] == "OrderPlaced"}
    assert revealed[day["ask"]] == placed[day["ask"]]  # filled: whole for everyone
    mine = {
        json.loads(r["data"])["order_id"]: r
        for r in rows_of(api_csv(users["mm2"], "events"))
        if r["type"] == "OrderPlaced"
    }
    assert mine[day["kept"]] == placed[day["kept"]]


def test_the_zip_and_the_cli_carry_orders_and_fills(users, day, tmp_path):
    out = io.StringIO()
    call_command("export", "auc", "--out", str(tmp_path), stdout=out)
    lines = out.getvalue().splitlines()
    assert f"{tmp_path / 'orders.csv'}: {len(day)} rows" in lines
    assert any(line.startswith(f"{tmp_path / 'fills.csv'}: ") for line in lines)
    assert (tmp_path / "orders.csv").read_text(newline="") == export.csv_text(
        export.SessionExport(export.find_session("auc")).table("orders")
    )[0]
    headers = {"Authorization": f"Bearer {tokens.create_token(users['eve'], name='z')[1]}"}
    body = Client().get("/api/v1/sessions/auc/export.zip", headers=headers).content
    import zipfile

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        members = {name: archive.read(name).decode() for name in archive.namelist()}
    assert members["orders.csv"] == api_csv(users["eve"], "orders")
    assert members["fills.csv"] == api_csv(users["eve"], "fills") == api_csv(users["org"], "fills")
