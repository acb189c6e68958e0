"""Bounded shorting in the admin: a session's shorting settings in the list and on its page (read-only,
"off" without), participants' liquidated_at in the session's participants and in the participant list,
and a payout's gross beside it after a haircut."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conftest import create_demo
from markets import services
from markets.tests.test_admin import admin_client, organiser  # noqa: F401  (fixtures)
from markets.tests.test_margin import PRICES, tick, trade

pytestmark = pytest.mark.django_db
SETTINGS = {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"}


def test_the_session_list_and_page_show_the_shorting_settings(admin_client, users):  # noqa: F811
    create_demo(users, **SETTINGS)
    create_demo(users, "plain")
    listing = admin_client.get(reverse("admin:markets_session_changelist")).content.decode()
    assert "short limit 0.2, margin band 0.15, initial margin 0.05" in listing
    assert '<td class="field-shorting_settings">off</td>' in listing
    page = admin_client.get(reverse("admin:markets_session_change", args=["demo"])).content.decode()
    assert "short limit 0.2, margin band 0.15, initial margin 0.05" in page
    assert 'name="short_limit"' not in page  # read-only, as everything the log made


def test_a_liquidated_participant_and_a_haircut_payout_are_visible(admin_client, users):  # noqa: F811
    create_demo(users, **SETTINGS)
    tick("demo", PRICES)
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")
    tick("demo", {"AAPL": 250})
    assert services.liquidate_due_sessions()
    listing = admin_client.get(reverse("admin:markets_participant_changelist")).content.decode()
    assert "field-liquidated_at" in listing
    page = admin_client.get(reverse("admin:markets_session_change", args=["demo"])).content.decode()
    assert "liquidated at" in page.lower() and page.count("field-liquidated_at") >= 4
    services.settle_session(users["org"], "demo", prices={"AAPL": "1", "NVDA": "50", "META": "80", "ORCL": "20"})
    settled = admin_client.get(reverse("admin:markets_session_change", args=["demo"])).content.decode()
    assert "field-gross" in settled
