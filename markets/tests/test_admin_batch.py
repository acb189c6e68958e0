"""Batch auctions in the admin: the session form creates a batch session with its settings through the
service (a bad setting is shown on its field and writes nothing), and orders and batches are listed,
searchable by session, never editable."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import services
from markets.models import Batch, Order, Session
from markets.tests.test_admin import _session_form, admin_client, organiser  # noqa: F401  (fixtures)
from markets.tests.test_batch_service import T0, tick

pytestmark = pytest.mark.django_db


def test_the_session_form_creates_a_batch_session_with_its_settings(admin_client):  # noqa: F811
    page = admin_client.get(reverse("admin:markets_session_add")).content.decode()
    assert 'name="mechanism"' in page and 'name="batch_band"' in page
    body = _session_form(mechanism="batch", batch_seconds="5", batch_band="0.05", max_orders="3", min_order="0.5")
    response = admin_client.post(reverse("admin:markets_session_add"), body)
    assert response.status_code == 302, response.content.decode()[:2000]
    s = Session.objects.get(id="friday")
    assert (s.mechanism, s.batch_seconds, s.batch_band, s.max_orders, s.min_order) == ("batch", 5, "0.05", 3, 500_000)
    created = Event.objects.get(type="SessionCreated").data
    assert created["batch"] == {"seconds": 5, "band": "0.05", "max_orders": 3, "min_order": 500_000}
    admin_client.post(reverse("admin:markets_session_add"), _session_form(session_id="plain"))
    assert Session.objects.get(id="plain").mechanism == "rfq"  # left out: RFQs, as before


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"mechanism": "batch", "batch_band": "0.7"}, "batch_band", "The price band must be more than 0"),
        ({"mechanism": "batch", "batch_seconds": "0"}, "batch_seconds", "Seconds per batch must be a whole number"),
        ({"mechanism": "batch", "max_orders": "lots"}, "max_orders", "Resting orders per person must be a whole"),
        ({"mechanism": "auction"}, "mechanism", "Select a valid choice"),
    ],
)
def test_a_bad_setting_is_shown_on_its_field_and_nothing_is_written(admin_client, overrides, field, words):  # noqa: F811
    response = admin_client.post(reverse("admin:markets_session_add"), _session_form(**overrides))
    assert response.status_code == 200
    html = response.content.decode().replace("&#x27;", "'")
    row = re.search(
        r'<div class="form-row errors">\s*<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>\s*<div><label for="id_(\w+)"',
        html,
        re.S,
    )
    assert row and words in row.group(1) and row.group(2) == field, html[:3000]
    assert not Event.objects.exists() and not Session.objects.exists()


def test_orders_and_batches_are_listed_searchable_and_never_editable(admin_client, users):  # noqa: F811
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch")
    create_demo(users, "other", mechanism="batch")
    tick("auc", T0)
    ask = services.place_order(users["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    services.place_order(users["mm"], "auc", "NVDA", "AAPL", "4", "2.45", gtc=True)
    services.place_order(users["bob"], "other", "ORCL", "META", "1", "0.2")
    clock.set_time(T0 + dt.timedelta(seconds=10))
    cut = services.clear_batch(None, "auc")
    listed = admin_client.get(reverse("admin:markets_order_changelist") + "?q=auc").content.decode()
    assert "0.39000000" in listed and "10.000000" in listed and "gtc" in listed
    assert "0.20000000" not in listed  # the other session's order: not found by "auc"
    assert admin_client.get(reverse("admin:markets_order_add")).status_code == 403
    page = admin_client.get(reverse("admin:markets_order_change", args=[ask.id]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(reverse("admin:markets_order_delete", args=[ask.id])).status_code == 403
    batches = admin_client.get(reverse("admin:markets_batch_changelist") + "?q=auc").content.decode()
    assert "AAPL " in batches and cut.volume in batches
    batch = admin_client.get(reverse("admin:markets_batch_change", args=[cut.id])).content.decode()
    assert 'name="_save"' not in batch and "alice" in batch  # the fills, read-only
    assert admin_client.get(reverse("admin:markets_batch_add")).status_code == 403
    assert Order.objects.get(id=ask.id).status in ("filled", "expired") and Batch.objects.count() == 1
    session = admin_client.get(reverse("admin:markets_session_change", args=["auc"])).content.decode()
    assert "reserved" in session
