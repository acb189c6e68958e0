"""The fixing rule on the create form in Chromium against daphne: a window's settings appear only for the
windowed rules, a bad rule as JSON is said beside the field (nothing created), a good ladder creates the
session. Screenshots in test-artifacts/ (fixing-form.png, fixing-form-error.png)."""

from __future__ import annotations

import json

import pytest

from markets.models import Session
from markets.tests.test_browser import CHROMIUM, browser, server, shot, signed_in_page  # noqa: F401
from markets.tests.test_fixing_api import FALLBACK

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]


def test_the_create_form_offers_the_rules_and_says_a_bad_one_beside_its_field(browser, server, users):  # noqa: F811
    org = signed_in_page(browser, server, users["org"])
    org.set_viewport_size({"width": 1100, "height": 1400})
    org.goto(f"{server.url}/")
    form = org.locator("#create-form")
    assert not form.locator("input[name=fixing_window]").is_visible()  # last: no window
    assert form.locator("input[name=fixing_source]").is_visible()
    form.locator("select[name=fixing_rule]").select_option("vwap")
    assert form.locator("input[name=fixing_window]").is_visible()
    assert form.locator("input[name=fixing_min_volume]").is_visible()
    form.locator("input[name=session_id]").fill("fx")
    form.locator("input[name=legs]").fill("AAPL, NVDA")
    form.locator("input[name=q]").fill("100, 60")
    form.locator("textarea[name=fixing_json]").fill('{"rule": "fallback", "tiers": []}')
    shot(org, "fixing-form")
    form.locator("button.primary").click()
    error = org.locator("#create-form label.has-error", has_text="Advanced: rule as JSON").locator(".error")
    error.wait_for(timeout=5_000)
    assert "A fallback rule needs a list of 1 to 8 tiers, tried in order" in error.inner_text()
    shot(org, "fixing-form-error")
    assert not Session.objects.filter(id="fx").exists()
    org.locator("#create-form textarea[name=fixing_json]").fill(json.dumps(FALLBACK))
    org.locator("#create-form button.primary").click()
    org.wait_for_url(f"{server.url}/sessions/fx/", timeout=10_000)
    assert Session.objects.get(id="fx").fixing_rule["rule"] == "fallback"
