"""The fixing in Chromium against daphne: a session settling by a VWAP with a fallback to the last price,
its window running. The floor says the rule in words and each leg's progress (ticks, volume, the value and
the tier that would answer now) as ticks arrive, without a reload; once settled, the results page shows the
record. Screenshots in test-artifacts/ (fixing-floor.png, fixing-results.png)."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import create_demo
from ledger import clock
from markets import services
from markets.tests.test_browser import CHROMIUM, browser, server, shot, signed_in_page  # noqa: F401
from oracle.models import Tick

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]

U = 10**6
RULE = {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}]}


def trade_ticks(prices: dict[str, float], volume: float | None) -> None:
    now = clock.now()
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=s, at=now, price=round(p * U), volume=None if volume is None else round(volume * U), source="feed")
        for s, p in prices.items()
    )  # fmt: skip


def test_the_floor_follows_the_fixing_window_and_the_results_show_the_record(browser, server, users):  # noqa: F811
    t2 = (clock.now() + dt.timedelta(seconds=90)).replace(microsecond=0)
    create_demo(users, t2=t2, end_mode="timed", fixing_rule=RULE)
    trade_ticks({"AAPL": 190.1, "NVDA": 480.2, "META": 350, "ORCL": 104.3}, 400)
    alice = signed_in_page(browser, server, users["alice"])
    alice.goto(f"{server.url}/sessions/demo/")
    alice.wait_for_selector("#live.on", timeout=10_000)

    panel = alice.locator("[data-testid=fixing]")
    assert panel.locator("[data-testid=fixing-rule]").inner_text() == (
        "The VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, "
        "the last price at or before t2 (2 tiers)"
    )
    assert "running" in panel.locator("[data-testid=fixing-when]").inner_text()
    # 400 traded of the 1000 the VWAP needs: the last price answers, and the row says why not the VWAP.
    assert alice.locator("[data-testid=fixing-volume-AAPL]").inner_text() == "400"
    assert alice.locator("[data-testid=fixing-tier-AAPL]").inner_text() == "last 2/2"
    assert alice.locator("[data-testid=fixing-why-AAPL]").inner_text() == "vwap: volume 400 in the window, 1000 needed"

    # Ticks arrive: the panel follows without a reload.
    trade_ticks({"AAPL": 192.5, "NVDA": 478.0, "META": 352.4}, 700)  # ORCL trades nothing more
    alice.locator("[data-testid=fixing-volume-AAPL]", has_text="1100").wait_for(timeout=10_000)
    assert alice.locator("[data-testid=fixing-ticks-AAPL]").inner_text() == "2"
    assert alice.locator("[data-testid=fixing-tier-AAPL]").inner_text() == "vwap 1/2"
    # (190.10 x 400 + 192.50 x 700) / 1100 = 191.627272..., floored.
    assert alice.locator("[data-testid=fixing-value-AAPL]").inner_text() == "191.63"
    assert alice.locator("[data-testid=fixing-why-AAPL]").inner_text() == ""
    assert alice.locator("[data-testid=fixing-tier-ORCL]").inner_text() == "last 2/2"
    alice.set_viewport_size({"width": 1280, "height": 900})
    shot(alice, "fixing-floor")

    # t2 passes (in this process's clock): the session settles at its fixing; the floor says so by push.
    clock.set_time(t2 + dt.timedelta(seconds=1))
    services.settle_session(None, "demo")
    alice.locator("[data-testid=fixing][data-state=settled]").wait_for(timeout=10_000)
    assert "The whole record" in alice.locator("[data-testid=fixing-when]").inner_text()

    alice.goto(f"{server.url}/sessions/demo/results")
    record = alice.locator("[data-testid=fixing-record]")
    assert record.locator("[data-testid=fixing-described]").inner_text().startswith("The VWAP over the 300 s before t2")
    window = record.locator("[data-testid=fixing-window]").inner_text()
    start = (t2 - dt.timedelta(seconds=300)).strftime("%H:%M:%S")
    assert f"window {start} \u2013 {t2:%H:%M:%S} UTC" in window
    assert record.locator("[data-testid=fixing-tier-AAPL]").inner_text() == "vwap tier 1"
    assert record.locator("[data-testid=fixing-volume-AAPL]").inner_text() == "1100"
    assert record.locator("[data-testid=fixing-sources-AAPL]").inner_text() == "feed"
    assert record.locator("[data-testid=fixing-tier-ORCL]").inner_text() == "last tier 2"
    passed = record.locator("[data-testid=fixing-passed-ORCL]").inner_text()
    assert passed == "1 vwap: volume 400 in the window, 1000 needed"
    ids = record.locator("[data-testid=fixing-ids-AAPL]")
    assert not ids.is_visible()  # the tick ids wait in a details element
    record.locator("[data-testid=fixing-count-AAPL]").click()
    used = Tick.objects.filter(session_id="demo", symbol="AAPL").order_by("id").values_list("id", flat=True)
    assert ids.inner_text() == " ".join(str(i) for i in used)
    shot(alice, "fixing-results")


def test_a_waiting_settlement_says_what_is_missing_on_the_monitor(browser, server, users):  # noqa: F811
    real = clock.now().replace(microsecond=0)
    t2 = real - dt.timedelta(seconds=60)
    clock.set_time(t2 - dt.timedelta(minutes=10))
    rule = {"rule": "composite", "inner": {"rule": "last"}, "sources": ["a", "b"], "min_sources": 2}
    create_demo(users, t2=t2, end_mode="timed", fixing_rule=rule)
    clock.set_time(t2 - dt.timedelta(seconds=20))
    trade_ticks({"AAPL": 190.1, "NVDA": 480.2, "META": 350, "ORCL": 104.3}, None)  # source "feed": neither a nor b
    clock.set_time(real)
    services.run_due()
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/sessions/demo/monitor")
    waiting = org.locator("[data-testid=monitor-fixing] [data-testid=fixing-waiting]")
    assert "The settlement waits for its fixing." in waiting.inner_text()
    assert "The organiser may settle by hand at prices given" in waiting.inner_text()
    why = org.locator("[data-testid=monitor-fixing] [data-testid=fixing-why-AAPL]").inner_text()
    assert (
        why
        == "1 composite: no source answered (a: last: no tick at or before the end of the window; b: last: no tick at or before the end of the window)"
    )
    shot(org, "fixing-monitor-waiting")
