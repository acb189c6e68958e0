"""A decimal comma typed on a phone, in a real Chromium against daphne: the floor's RFQ form takes `1,5`,
says next to the field why `1,000` is refused, and the session form takes a basket of decimal commas."""

from __future__ import annotations

import shutil

import pytest

from markets.models import RFQ, Session
from markets.tests.test_browser import CHROMIUM, browser, open_floor, server, shot, signed_in_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

PHONE = {"width": 390, "height": 844}


def test_a_phone_types_a_decimal_comma_on_the_floor(browser, server, users, demo):  # noqa: F811
    alice = signed_in_page(browser, server, users["alice"])
    alice.set_viewport_size(PHONE)
    open_floor(alice, server)
    form = alice.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("1,5")
    form.locator("button").click()
    alice.locator("#rfqs .rfq", has_text="gives 1.5 AAPL").wait_for(timeout=5_000)
    assert RFQ.objects.get().quantity == 1_500_000
    form.locator("input[name=quantity]").fill("1,000")
    form.locator("button").click()
    error = alice.locator("#board [data-testid=error]")
    error.wait_for(timeout=5_000)
    assert error.inner_text() == "Quantity is ambiguous as '1,000': write 1000 (no thousands separators) or 1.000"
    assert form.locator("input[name=quantity]").input_value() == "1,000"  # kept, to be corrected
    assert RFQ.objects.count() == 1
    shot(alice, "floor-decimal-comma-phone")


def test_the_session_form_takes_a_basket_of_decimal_commas(browser, server, users):  # noqa: F811
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/")
    form = org.locator("#create-form")
    form.locator("input[name=session_id]").fill("eu")
    form.locator("input[name=legs]").fill("GOLD 3m, GOLD 1y, GOLD 5y")
    form.locator("input[name=q]").fill("0,5, 1,5, 2")
    form.locator("button.primary").click()
    hint = org.locator("#create-form .error", has_text="separate the values with semicolons")
    hint.wait_for(timeout=5_000)
    shot(org, "session-form-decimal-comma-hint")
    org.locator("#create-form input[name=q]").fill("0,5; 1,5; 2")
    org.locator("#create-form button.primary").click()
    org.wait_for_url(f"{server.url}/sessions/eu/", timeout=5_000)
    assert Session.objects.get(id="eu").q == [500_000, 1_500_000, 2_000_000]
