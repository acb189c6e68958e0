"""A corporate action seen live in Chromium (#33): the organiser schedules a 10:1 split of NVDA a few
seconds ahead, every open floor shows the banner at once, and when the scheduler applies it at the cut the
applied banner and holdings ten times larger arrive over the socket, nobody reloading."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ledger import clock
from markets import services
from markets.tests.test_browser import CHROMIUM, add_ticks, browser, open_floor, server, shot, signed_in_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]


def test_a_split_is_announced_then_applied_live_on_the_floor(browser, server, users, demo):  # noqa: F811
    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    alice, bob = signed_in_page(browser, server, users["alice"]), signed_in_page(browser, server, users["bob"])
    for page in (alice, bob):
        open_floor(page, server)
    before = alice.locator('#holdings tr[data-user="alice"] td').nth(2).inner_text()
    assert before == "15.000000"

    cut = clock.now().replace(microsecond=0) + dt.timedelta(seconds=8)
    services.schedule_action(users["org"], "demo", "split", "NVDA", cut, ratio="10/1")
    for page in (alice, bob):
        page.locator("[data-testid=action-1][data-status=scheduled]").wait_for(timeout=10_000)
    said = alice.locator("[data-testid=action-1]").inner_text()
    assert "NVDA splits 10:1 at " in said and "open RFQs and orders on NVDA are cancelled then" in said
    shot(alice, "floor-action-scheduled")

    time.sleep(max(0.0, (cut - clock.now()).total_seconds()) + 0.2)
    services.run_due()
    for page in (alice, bob):
        page.locator("[data-testid=action-1][data-status=applied]").wait_for(timeout=10_000)
        page.locator('#holdings tr[data-user="alice"]').locator("text=150.000000").wait_for(timeout=5_000)
    said = bob.locator("[data-testid=action-1]").inner_text()
    assert "NVDA split 10:1 at " in said and "q 60 → 600" in said
    assert alice.locator('[data-leg="NVDA"] .leg-top').inner_text().endswith("q 600")
    assert alice.locator("[data-testid=my-holdings] td").nth(1).inner_text() == "150"
    assert alice.locator("#events").inner_text().count("CorporateActionApplied") == 1
    shot(alice, "floor-action-applied")

    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/sessions/demo/monitor")
    row = org.locator("[data-testid=monitor-action-1]")
    assert row.get_attribute("data-status") == "applied" and "60 → 600" in row.inner_text()
    shot(org, "monitor-actions")
