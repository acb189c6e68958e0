"""Who may export which table: one rule on both edges, the API and the floor's downloads (README,
"Exporting"): the organiser, staff and auditors (`markets.view_any_session`) get every table; any other
viewer of the session the events, trades, ticks and payouts. A refused table is 403 `not_organiser` on
both edges; the zip holds exactly the tables the viewer may have, byte for byte the same on both."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from conftest import create_demo, make_user
from markets import services, tokens
from markets.selectors import export

pytestmark = pytest.mark.django_db

PRICES = {"AAPL": "190.1", "NVDA": "480.2", "META": "350", "ORCL": "104.3"}
EVERY_TABLE = {
    "events",
    "trades",
    "holdings",
    "ticks",
    "orders",
    "fills",
    "payouts",
    "reconciliation",
    "fixing",
    "actions",
}
ANY_VIEWER = {"events", "trades", "ticks", "orders", "fills", "payouts", "fixing", "actions"}
# Each kind of viewer: how to make one, and the tables they may export.
VIEWERS = {
    "organiser": EVERY_TABLE,
    "staff": EVERY_TABLE,
    "auditor": EVERY_TABLE,
    "superuser": EVERY_TABLE,
    "trader": ANY_VIEWER,
    "maker": ANY_VIEWER,
    "watcher": ANY_VIEWER,
}


def viewer(users, kind: str):
    """A user of `kind` for the session `demo` (the participants are the seed's; the others are not in it)."""
    named = {"organiser": "org", "trader": "alice", "maker": "mm", "watcher": "eve"}
    if kind in named:
        return users[named[kind]]
    user = make_user(kind)
    if kind == "auditor":
        user.user_permissions.add(Permission.objects.get(codename="view_any_session"))
    user.is_staff = kind == "staff"
    user.is_superuser = kind == "superuser"
    user.save()
    return user


@pytest.fixture
def settled(users):
    """The seed's session, one trade, settled at given prices: every table exists."""
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.39").id)
    services.settle_session(users["org"], "demo", prices=PRICES)
    return users


def api(user) -> tuple[Client, dict[str, str]]:
    return Client(), {"Authorization": f"Bearer {tokens.create_token(user, name='export')[1]}"}


def floor(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def members(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_tests_cover_every_table():
    assert EVERY_TABLE == set(export.TABLES)


@pytest.mark.parametrize("table", sorted(EVERY_TABLE))
@pytest.mark.parametrize("kind", list(VIEWERS))
def test_a_table_is_exported_on_both_edges_to_whom_the_rule_allows(settled, kind, table):
    user = viewer(settled, kind)
    client, headers = api(user)
    by_api = client.get(f"/api/v1/sessions/demo/export/{table}.csv", headers=headers)
    on_floor = floor(user).get(reverse("markets:export_table", args=["demo", table]))
    if table in VIEWERS[kind]:
        assert (by_api.status_code, on_floor.status_code) == (200, 200), by_api.content
        assert by_api["Content-Type"] == on_floor["Content-Type"] == "text/csv; charset=utf-8"
        expected = export.csv_text(export.SessionExport(export.find_session("demo")).table(table))[0]
        assert by_api.content.decode() == on_floor.content.decode() == expected
    else:
        assert by_api.status_code == 403, by_api.content
        assert by_api.json()["code"] == "not_organiser"
        assert f"{table}.csv" in by_api.json()["message"]
        assert on_floor.status_code == 403 and f"{table}.csv" in on_floor.content.decode()


@pytest.mark.parametrize("kind", list(VIEWERS))
def test_the_zip_holds_the_tables_the_viewer_may_have_the_same_on_both_edges(settled, kind):
    user = viewer(settled, kind)
    client, headers = api(user)
    by_api = client.get("/api/v1/sessions/demo/export.zip", headers=headers)
    on_floor = floor(user).get(reverse("markets:export_zip", args=["demo"]))
    assert (by_api.status_code, on_floor.status_code) == (200, 200)
    assert set(members(by_api.content)) == {f"{t}.csv" for t in VIEWERS[kind]}
    assert by_api.content == on_floor.content
