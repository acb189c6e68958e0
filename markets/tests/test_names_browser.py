"""In a real Chromium against daphne: a guest's phone (375 px) shows "my position" first, named as typed,
and keeps it live as trades and ticks arrive and when the session settles (payout and rank on screen);
the results page; the organiser's monitor sorted by a column, the sort kept through live refreshes.
Screenshots go to test-artifacts/ (names-*.png)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client

from ledger import clock
from markets import invite_rules, services
from markets.models import Payout
from markets.services import invites
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, server  # noqa: F401
from oracle.models import Tick

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]

ZOE, ROCKET, LONG = "Zoë Núñez", "🚀 Rocket", "Maximiliana Wolfeschlegelsteinhausenberg"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


def ticks(prices: dict[str, int], sid: str = "cls") -> None:
    now = clock.now()
    Tick.objects.bulk_create(Tick(session_id=sid, symbol=s, at=now, price=p, source="test") for s, p in prices.items())


def page_for(browser, server, user, viewport: dict, **options):  # noqa: F811
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport=viewport, **options)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
          "url": server.url}]
    )  # fmt: skip
    return context.new_page()


def shot(page, name: str) -> None:
    page.wait_for_timeout(300)  # the last swap settled
    page.screenshot(path=str(ARTIFACTS / f"names-{name}.png"), full_page=True)


def top(page, selector: str) -> float:
    return page.locator(selector).bounding_box()["y"]


def the_class(users) -> dict:
    """Guests by link (a trader as typed with accents, a maker with an emoji, one with the longest name a
    link takes), an account trader; opened, priced."""
    services.create_session(users["org"], session_id="cls", legs=["AAPL", "NVDA", "META"], q=[100, 60, 80])
    trader = invite_rules.sign(invites.create_invite(users["org"], "cls", "trader", 10).token_id)
    maker = invite_rules.sign(invites.create_invite(users["org"], "cls", "maker", 10).token_id)
    people = {
        "zoe": invites.join_by_invite(trader, ZOE).user,
        "rocket": invites.join_by_invite(maker, ROCKET).user,
        "long": invites.join_by_invite(trader, LONG).user,
    }
    services.join_session(users["alice"], "cls", "trader")
    services.open_session(users["org"], "cls")
    ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000})
    return people


def test_my_position_comes_first_on_a_phone_and_follows_trades_ticks_and_the_settlement(browser, server, users):  # noqa: F811
    people = the_class(users)
    phone = page_for(browser, server, people["zoe"], PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone.goto(f"{server.url}/sessions/cls/")
    phone.wait_for_selector("#live.on", timeout=10_000)
    mine = phone.locator("[data-testid=my-position]")
    assert ZOE in mine.inner_text() and "Zoe-Nunez" not in mine.inner_text()
    # First on the phone: before the prices and the board; nothing scrolls sideways.
    assert top(phone, "#mine") < top(phone, "#legs") < top(phone, "#board")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    value = mine.locator("[data-testid=my-value]")
    before = value.inner_text()
    assert mine.locator("[data-testid=my-holdings] td").first.inner_text() == "25"

    desktop = page_for(browser, server, people["rocket"], DESKTOP)
    desktop.goto(f"{server.url}/sessions/cls/")
    desktop.wait_for_selector("#live.on", timeout=10_000)

    # A trade made elsewhere (this process) moves her position on her phone, pushed.
    rfq = services.request_rfq(people["zoe"], "cls", "AAPL", "NVDA", "10")
    services.accept_quote(people["zoe"], services.provide_quote(people["rocket"], rfq.id, "0.3").id)
    phone.wait_for_function(
        "() => document.querySelector('[data-testid=my-holdings] td').textContent.trim() === '15'", timeout=5_000
    )
    assert mine.locator("[data-testid=my-holdings] td").nth(1).inner_text() == "18"
    phone.locator("[data-testid=my-pnl].down").wait_for(timeout=5_000)  # 10 AAPL for 3 NVDA: a loss
    # The blotter and the board name both guests as typed; the long name is cut, whole in its title.
    phone.locator("#blotter-rows bdi.person", has_text=ZOE).first.wait_for(timeout=5_000)
    desktop.locator("#blotter-rows bdi.person", has_text=ROCKET).first.wait_for(timeout=5_000)
    cut = desktop.locator(f'#holdings bdi.person[title="{LONG}"]')
    assert cut.evaluate("e => e.scrollWidth > e.clientWidth") and cut.inner_text() == LONG
    assert desktop.locator("#holdings").evaluate("e => e.scrollWidth <= e.clientWidth")
    shot(phone, "floor-phone-after-trade")
    shot(desktop, "floor-desktop-after-trade")

    # A tick moves her value (a push to her socket, not a reload).
    shown = value.inner_text()
    assert shown != before
    ticks({"AAPL": 200_000_000, "NVDA": 470_000_000, "META": 351_000_000})
    phone.wait_for_function(
        "t => document.querySelector('[data-testid=my-value]').textContent.trim() !== t", arg=shown, timeout=5_000
    )

    # Settled: her payout and her rank, on screen at 375 px without scrolling sideways.
    services.settle_session(users["org"], "cls", prices={"AAPL": "190.1", "NVDA": "480.2", "META": "350"})
    payout = mine.locator("[data-testid=my-payout]")
    payout.wait_for(timeout=5_000)
    box = payout.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    rank = mine.locator("[data-testid=my-rank]").inner_text()
    assert rank.startswith("4") and "of 4" in rank  # the only loss of the class
    assert Decimal(payout.get_attribute("title")) == Decimal(Payout.objects.get(participant__user=people["zoe"]).amount)
    assert top(phone, "#mine") < top(phone, "#settlement") < top(phone, "#legs")
    shot(phone, "floor-phone-settled")
    desktop.locator("[data-testid=results-link]").wait_for(timeout=5_000)
    shot(desktop, "floor-desktop-settled")

    # The results page, from the settlement panel's link: ranks, names, P&L coloured.
    desktop.locator("[data-testid=results-link]").click()
    desktop.wait_for_url("**/sessions/cls/results")
    rows = desktop.locator("[data-testid=results-table] tbody tr")
    assert rows.count() == 4
    assert rows.last.locator("[data-testid=rank]").inner_text() == "4" and ZOE in rows.last.inner_text()
    assert rows.last.locator("td.down").count() == 1
    assert "✓ exact" in desktop.locator("[data-testid=results-check]").inner_text()
    shot(desktop, "results")
    phone.goto(f"{server.url}/sessions/cls/results")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    shot(phone, "results-phone")


def test_the_monitor_sorts_by_a_column_and_keeps_the_sort_through_refreshes(browser, server, users):  # noqa: F811
    people = the_class(users)
    rfq = services.request_rfq(people["zoe"], "cls", "AAPL", "NVDA", "10")
    services.accept_quote(people["zoe"], services.provide_quote(people["rocket"], rfq.id, "0.3").id)
    org = page_for(browser, server, users["org"], DESKTOP)
    org.goto(f"{server.url}/sessions/cls/monitor")
    org.wait_for_selector("#monitor-socket.on", timeout=10_000)
    table = org.locator("[data-testid=monitor-table]")

    def column(key: str) -> list[str]:
        return table.locator(f"tbody td[data-col={key}]").evaluate_all("cells => cells.map(c => c.dataset.value)")

    def names() -> list[str]:
        return table.locator("tbody td[data-col=name]").evaluate_all("cells => cells.map(c => c.dataset.value)")

    pnl = table.locator("th[data-sort=pnl]")
    pnl.click()
    assert pnl.get_attribute("aria-sort") == "descending"
    values = [Decimal(v) for v in column("pnl") if v]
    assert values == sorted(values, reverse=True) and values[0] > 0 > values[-1]
    assert names()[-1] == "org"  # the organiser holds nothing: empty cells go last
    pnl.click()
    assert pnl.get_attribute("aria-sort") == "ascending"
    values = [Decimal(v) for v in column("pnl") if v]
    assert values == sorted(values) and names()[0] == ZOE
    name = table.locator("th[data-sort=name]")
    name.click()
    assert name.get_attribute("aria-sort") == "ascending" and pnl.get_attribute("aria-sort") is None
    assert [n for n in names() if n != ROCKET] == ["alice", LONG, "org", ZOE]  # letters A to Z, accents aside
    name.click()  # reversed: Zoë first
    assert names()[0] == ZOE

    # A trade refreshes the monitor live: the new table keeps the chosen order and its indicator.
    refreshes = int(org.locator(".monitor").get_attribute("data-refreshes") or "0")
    again = services.request_rfq(people["long"], "cls", "META", "AAPL", "1")
    services.accept_quote(people["long"], services.provide_quote(people["rocket"], again.id, "1.5").id)
    org.wait_for_function(f"Number(document.querySelector('.monitor').dataset.refreshes || 0) > {refreshes}")
    org.locator("[data-testid=trade-count]", has_text="2").wait_for(timeout=5_000)
    assert table.locator("th[data-sort=name]").get_attribute("aria-sort") == "descending"
    assert names()[0] == ZOE
    table.locator("th[data-sort=taker]").click()
    counts = [int(v) for v in column("taker")]
    assert counts == sorted(counts, reverse=True)
    table.locator("th[data-sort=pnl]").click()
    shot(org, "monitor-sorted")
    # Reloaded, the page sorts as it was left (this tab remembers).
    org.reload()
    org.wait_for_selector("#monitor-socket.on", timeout=10_000)
    assert org.locator("[data-testid=monitor-table] th[data-sort=pnl]").get_attribute("aria-sort") == "descending"
