"""End to end in a real Chromium (Debian's package, driven by Playwright) against daphne serving the
ASGI app on the test database file: nobody presses reload, and every page keeps up.

Screenshots land in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from conftest import engine
from ledger import clock
from oracle.models import Tick
from sessionsite.testing import BASE_DIR, Server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = BASE_DIR / "test-artifacts" if engine() == "sqlite" else BASE_DIR / "test-artifacts" / "postgresql"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps a loop in this thread
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(transactional_db, tmp_path):
    srv = Server(tmp_path / "daphne.log").start()
    yield srv
    srv.stop()


def signed_in_page(browser, server: Server, user):
    """A browser context carrying a real session cookie for `user` (made by Django's auth)."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": server.url,
            }
        ]
    )
    page = context.new_page()
    return page


def open_floor(page, server: Server) -> None:
    page.goto(f"{server.url}/sessions/demo/")
    page.wait_for_selector("#live.on", timeout=10_000)  # the WebSocket is connected


def add_ticks(prices: dict[str, int]) -> None:
    now = clock.now()
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=s, at=now, price=p, source="test") for s, p in prices.items()
    )


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_rfq_quote_accept_tick_and_settlement_live_in_four_browsers(browser, server, users, demo):
    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    alice = signed_in_page(browser, server, users["alice"])
    mm = signed_in_page(browser, server, users["mm"])
    bob = signed_in_page(browser, server, users["bob"])
    org = signed_in_page(browser, server, users["org"])
    for page in (alice, mm, bob, org):
        open_floor(page, server)

    # The taker asks: 10 AAPL for NVDA.
    form = alice.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("10")
    form.locator("select[name=give_leg]").select_option("AAPL")
    form.locator("select[name=get_leg]").select_option("NVDA")
    form.locator("button").click()
    alice.wait_for_selector("text=alice gives 10 AAPL for NVDA")

    # The maker sees it appear without reload, and quotes 0.62.
    quote_form = mm.locator("[data-testid^=quote-form-]").first
    quote_form.wait_for(timeout=5_000)
    quote_form.locator("input[name=rate]").fill("0.62")
    quote_form.locator("button").click()

    # The taker sees the live quote with its countdown, and accepts.
    accept = alice.locator("[data-testid^=accept-]").first
    accept.wait_for(timeout=5_000)
    assert alice.locator(".countdown").first.inner_text().endswith("s")
    shot(alice, "floor-taker-quote")
    accept.click()

    # Both sides show the new holdings without reload: alice 15 - 10 AAPL, 15 + 6.2 NVDA.
    for page in (alice, mm, bob):
        row = page.locator('#holdings tr[data-user="alice"]')
        row.locator("text=21.200000").wait_for(timeout=5_000)
        assert "5.000000" in row.inner_text()
        page.locator('#holdings tr[data-user="mm"]').locator("text=8.800000").wait_for(timeout=5_000)
        page.locator("#blotter td", has_text="6.2").first.wait_for(timeout=5_000)
    shot(mm, "floor-maker-after-trade")

    # A price written from outside the server (this test process) appears in a third browser.
    add_ticks({"AAPL": 201_234_500, "NVDA": 470_000_000, "META": 355_000_000, "ORCL": 101_000_000})
    bob.locator("[data-testid=price-AAPL]").locator("text=201.23").wait_for(timeout=5_000)
    shot(bob, "floor-watcher-after-tick")

    # The organiser settles from the floor: fixing prices shown first, then confirmed.
    org.get_by_role("button", name="Settle…").click()
    org.get_by_role("button", name="Confirm settlement").wait_for(timeout=5_000)
    assert "201.234500" in org.locator("#controls").inner_text()
    org.get_by_role("button", name="Confirm settlement").click()
    for page in (alice, mm, bob):
        page.locator("#settlement").locator("text=✓ exact").wait_for(timeout=5_000)
        assert page.locator("[data-testid=session-status]").inner_text() == "Settled"
    payouts = alice.locator("[data-testid=payouts]").inner_text()
    assert "Σ payouts" in payouts
    shot(alice, "floor-settled")


def test_inline_error_next_to_the_form_in_the_browser(browser, server, users, demo):
    alice = signed_in_page(browser, server, users["alice"])
    open_floor(alice, server)
    form = alice.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("lots")
    form.locator("button").click()
    error = alice.locator("#board [data-testid=error]")
    error.wait_for(timeout=5_000)
    assert (
        error.inner_text()
        == "Quantity must be a number, not 'lots' (digits 0-9 with an optional decimal point, e.g. 2.5)"
    )
    form.locator("input[name=quantity]").fill("1000")
    form.locator("button").click()
    alice.locator("#board [data-testid=error]", has_text="Insufficient inventory").wait_for(timeout=5_000)
    shot(alice, "floor-inline-error")


SHOWN = """sel => {
    const node = document.querySelector(sel).cloneNode(true);
    node.querySelectorAll('.countdown').forEach(el => el.remove());  // ticks by itself, second by second
    return node.textContent.replace(/\\s+/g, ' ').trim();
}"""


def test_a_floor_kept_up_by_pushed_rows_shows_what_the_page_loaded_afresh_shows(browser, server, users, demo):
    """Trades, quotes, a withdrawal and a cancel written by another process reach two open floors as rows
    only (more rows than a floor keeps): each then shows exactly what the same floor loaded afresh shows,
    holdings, the newest trades and events, and the RFQ board with its quotes."""
    from markets import services
    from markets.models import Session

    mm, alice = signed_in_page(browser, server, users["mm"]), signed_in_page(browser, server, users["alice"])
    for page in (mm, alice):
        open_floor(page, server)
    for i in range(27):  # 27 trades and 81 events: past the 25 rows a floor keeps of each
        taker, maker = users["alice" if i % 2 else "bob"], users["mm" if i % 3 else "mm2"]
        rfq = services.request_rfq(taker, "demo", "AAPL", "NVDA", "0.5")
        services.accept_quote(taker, services.provide_quote(maker, rfq.id, "0.5").id)
    kept = services.request_rfq(users["alice"], "demo", "META", "ORCL", "2")
    services.provide_quote(users["mm"], kept.id, "1.1")
    withdrawn = services.request_rfq(users["bob"], "demo", "ORCL", "META", "3")
    services.withdraw_quote(users["mm2"], services.provide_quote(users["mm2"], withdrawn.id, "0.9").id)
    services.cancel_rfq(users["bob"], services.request_rfq(users["bob"], "demo", "AAPL", "META", "1").id)
    last = Session.objects.get(id="demo").last_seq
    for page in (mm, alice):
        page.wait_for_function(f"document.querySelector('[data-testid=seq]').textContent == '{last}'", timeout=15_000)
        assert page.locator("#blotter tbody tr").count() == 25 and page.locator("#events tbody tr").count() == 25
        fresh = page.context.new_page()
        fresh.goto(f"{server.url}/sessions/demo/")
        for panel in ("#holdings tbody", "#blotter tbody", "#events tbody", "#rfqs", "#pool"):
            assert page.evaluate(SHOWN, panel) == fresh.evaluate(SHOWN, panel), panel
        assert page.locator(f"#rfq-{kept.id} [data-testid^=accept-]").count() == (page is alice)
        fresh.close()
    shot(mm, "floor-kept-up-by-rows")


def test_session_list_and_portfolio_pages(browser, server, users, demo):
    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/")
    assert "88,338.00" in org.locator("#sessions").inner_text()
    shot(org, "sessions")
    alice = signed_in_page(browser, server, users["alice"])
    alice.goto(f"{server.url}/portfolio/")
    assert "25.000000" in alice.locator("[data-testid=portfolio-demo]").inner_text()
    shot(alice, "portfolio")


def test_refusals_failures_and_a_lost_network_show_where_the_person_acted(browser, server, users, demo):
    """A quote filled from another tab, a server that stopped answering, a browser gone offline: each
    is said on the page, next to what was pressed, and the live dot stops claiming "live"."""
    from markets import services

    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.provide_quote(users["mm"], rfq.id, "0.40")
    first, second = (signed_in_page(browser, server, users["alice"]) for _ in range(2))
    for page in (first, second):
        open_floor(page, server)
    # The fair-rate hint beside the RFQ form: price of AAPL / price of NVDA.
    assert "1 AAPL ≈ 0.3959 NVDA" in first.locator("[data-testid=fair-hint]").inner_text()
    second.locator("[name=give_leg]").select_option("NVDA")
    second.locator("[name=get_leg]").select_option("AAPL")
    assert "1 NVDA ≈ 2.5260 AAPL" in second.locator("[data-testid=fair-hint]").inner_text()

    # Two tabs, one quote: the first fills it; the second tab's click says why nothing happened.
    second.context.set_offline(True)  # its socket cannot hear the fill, as with a flaky connection
    assert second.locator("#live .live-text").inner_text() == "offline"
    second.context.set_offline(False)
    first.locator("[data-testid^=accept-]").first.click()
    first.locator("#blotter td", has_text="alice").first.wait_for(timeout=5_000)
    # A page that still shows the filled quote's Accept (as one that missed the push would), pressed.
    second.evaluate(
        """id => { const b = document.createElement('button'); b.className = 'primary small';
        b.dataset.testid = 'stale-accept'; b.textContent = 'Accept';
        b.setAttribute('hx-post', '/quotes/' + id + '/accept'); b.setAttribute('hx-target', '#board');
        b.setAttribute('hx-swap', 'outerHTML'); document.querySelector('#board h2').after(b); htmx.process(b); }""",
        rfq.quotes.first().id,
    )
    second.locator("[data-testid=stale-accept]").click()
    said = second.locator("#board [data-testid=error]")
    said.wait_for(timeout=5_000)
    assert "filled" in said.inner_text().lower()
    shot(second, "floor-refused-already-filled")

    # The server stops: pressing a button says the server did not answer, and nothing pretends "live".
    server.stop()
    form = first.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("1")
    form.locator("button").click()
    failure = first.locator("[data-testid=failure]")
    failure.wait_for(timeout=10_000)
    assert "did not answer" in failure.inner_text()
    assert "live" != first.locator("#live .live-text").inner_text()
    shot(first, "floor-server-down")


def test_what_was_said_where_a_person_acted_stays_while_pushes_redraw_the_board(browser, server, users, demo):
    """A maker's refused quote and a taker's "Traded: ..." stay where they were said while other
    people's quotes and RFQs redraw those rows, until the person dismisses them or acts again; the
    organiser pauses and resumes from the floor, and every floor's badge says Paused meanwhile."""
    from markets import services

    add_ticks({"AAPL": 190_100_000, "NVDA": 480_200_000, "META": 350_000_000, "ORCL": 104_300_000})
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "5")
    services.provide_quote(users["mm"], rfq.id, "0.40")
    alice, mm, org = (signed_in_page(browser, server, users[name]) for name in ("alice", "mm", "org"))
    for page in (alice, mm, org):
        open_floor(page, server)

    # The maker quotes for 0 seconds: refused, said under the RFQ.
    form = mm.locator(f"#quote-form-{rfq.id}")
    form.locator("input[name=ttl]").fill("0")
    form.locator("button").click()
    refused = mm.locator(f"#rfq-{rfq.id} [data-testid=error]")
    refused.wait_for(timeout=5_000)
    # Another maker quotes on the same RFQ: its row is pushed afresh to every floor, and the refusal stays.
    other = services.provide_quote(users["mm2"], rfq.id, "0.39")
    mm.locator(f"#quote-{other.id}").wait_for(timeout=5_000)
    mm.wait_for_timeout(700)  # several pushes' worth: the old floor lost the message within 0.4 s
    assert "seconds" in mm.locator(f"#rfq-{rfq.id} [data-testid=error]").inner_text()
    shot(mm, "floor-refusal-kept")
    mm.locator(f"#rfq-{rfq.id} [data-testid=error] .dismiss").click()
    assert mm.locator("[data-testid=error]").count() == 0

    # The taker accepts: the RFQ leaves the board and what was traded is said where it was, and stays.
    alice.locator(f"#quote-{other.id} [data-testid^=accept-]").click()
    notice = alice.locator("#rfqs [data-testid=notice]")
    notice.wait_for(timeout=5_000)
    assert notice.inner_text().startswith("Traded: gave 5 AAPL, got 1.95 NVDA (trade ")
    later = services.request_rfq(users["bob"], "demo", "META", "ORCL", "1")  # pushed to the top of the board
    alice.locator(f"#rfq-{later.id}").wait_for(timeout=5_000)
    add_ticks({"AAPL": 191_000_000, "NVDA": 481_000_000, "META": 351_000_000, "ORCL": 105_000_000})
    alice.locator("[data-testid=price-AAPL]").locator("text=191.00").wait_for(timeout=5_000)
    alice.wait_for_timeout(700)
    assert alice.locator("#rfqs [data-testid=notice]").inner_text().startswith("Traded: gave 5 AAPL")
    shot(alice, "floor-traded-notice")

    # The organiser pauses from the floor; every floor says Paused; the organiser's offers Resume.
    assert alice.locator("[data-testid=floor-pause]").is_hidden()
    org.locator("[data-testid=floor-pause]").click()
    for page in (alice, mm, org):
        page.locator("[data-testid=session-status]", has_text="Paused").wait_for(timeout=5_000)
    assert alice.locator("[data-testid=floor-resume]").is_hidden()
    shot(org, "floor-paused-organiser")
    # Acting again takes the old notice away.
    alice.locator(f"#rfq-{later.id}").wait_for(timeout=5_000)
    assert alice.locator("#rfqs [data-testid=notice]").count() == 1
    org.locator("[data-testid=floor-resume]").click()
    for page in (alice, mm, org):
        page.locator("[data-testid=session-status]", has_text="Open").wait_for(timeout=5_000)
    form = alice.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("1")
    form.locator("button").click()
    alice.locator("#rfqs .rfq", has_text="alice gives 1 AAPL").wait_for(timeout=5_000)
    assert alice.locator("#rfqs [data-testid=notice]").count() == 0


def test_a_floor_whose_sign_in_is_withdrawn_says_so_instead_of_reconnecting(browser, server, users, demo):
    """The organiser deactivates an account in the admin (another process here): the server closes its
    floor's socket (4401) within seconds, and the page says it is signed out, not "reconnecting…"."""
    alice = signed_in_page(browser, server, users["alice"])
    open_floor(alice, server)
    users["alice"].is_active = False
    users["alice"].save(update_fields=["is_active"])
    alice.wait_for_function(
        "document.querySelector('#live .live-text').textContent.startsWith('signed out')", timeout=15_000
    )
    assert "off" in alice.locator("#live").get_attribute("class")
