"""A class running a batch session, in Chromium against daphne: the organiser creates it from the session
form, three students (one on a phone) and a maker place crossing orders from their floors, nobody sees
anyone else's order before the cut, the organiser presses "Clear now" (and, in a second session, the
scheduler cuts from another process), and every floor shows the batch's prices, each person's fills and the
new holdings without a reload. Screenshots at desktop width and at 375 px land in test-artifacts/."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from conftest import create_demo, make_user
from ledger import clock
from markets import services
from markets.models import Batch, Fill, Holding
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, server, shot, signed_in_page  # noqa: F401
from oracle.models import Tick
from sessionsite.testing import BASE_DIR, child_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]

PHONE = {"width": 375, "height": 812}
PRICES = {"AAPL": 190_000_000, "NVDA": 475_000_000, "META": 350_000_000, "ORCL": 100_000_000}


def tick(session_id: str) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=s, at=clock.now(), price=p, source="test") for s, p in PRICES.items()
    )


def phone_page(browser, server, user):  # noqa: F811
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": server.url}])
    return context.new_page()


def phone_shot(page, name: str) -> None:
    """The whole page, and what the phone's screen shows first (its top 812 px), as a student sees it."""
    shot(page, name)
    page.screenshot(path=str(ARTIFACTS / f"{name}-screen.png"), clip={"x": 0, "y": 0, **PHONE}, full_page=True)


def open_floor(page, server, session_id: str) -> None:  # noqa: F811
    page.goto(f"{server.url}/sessions/{session_id}/")
    page.wait_for_selector("#live.on", timeout=10_000)


def order(page, give: str, get: str, quantity: str, limit: str, life: str = "once", good_for: str = "") -> str:
    """Fill the order form and place it; returns what the floor said next to the form."""
    form = page.locator("[data-testid=order-form]")
    form.locator("[name=quantity]").fill(quantity)
    form.locator("[name=give_leg]").select_option(give)
    form.locator("[name=get_leg]").select_option(get)
    form.locator("[name=limit_rate]").fill(limit)
    form.locator("[name=life]").select_option(life)
    if good_for:
        form.locator("[name=good_for]").fill(good_for)
    form.locator("[data-testid=place-order]").click()
    said = page.locator("#orders [data-testid=order-notice], #orders [data-testid=order-error]").first
    said.wait_for(timeout=5_000)
    return said.inner_text()


def body(page) -> str:
    return page.locator("body").inner_text()


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_class_runs_a_batch_session_with_three_students_and_a_maker(browser, server, users):  # noqa: F811
    users["carol"] = make_user("carol")
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/")
    form = org.locator("#create-form")
    assert form.locator("[name=batch_seconds]").is_hidden()  # an RFQ session has no batch settings
    form.locator("[name=session_id]").fill("cls")
    form.locator("[name=legs]").fill("AAPL, NVDA, META, ORCL")
    form.locator("[name=q]").fill("100, 60, 80, 120")
    form.locator("[name=mechanism]").select_option("batch")
    form.locator("[name=batch_seconds]").fill("3600")  # the organiser clears by hand in this class
    form.locator("[name=batch_band]").fill("0,10")
    shot(org, "batch-session-form")
    form.get_by_role("button", name="Create session").click()
    org.wait_for_url("**/sessions/cls/")
    for name, role in (("alice", "trader"), ("bob", "trader"), ("carol", "trader"), ("mm", "maker")):
        services.join_session(users[name], "cls", role)
    services.open_session(users["org"], "cls")
    tick("cls")

    alice, bob, mm = (signed_in_page(browser, server, users[n]) for n in ("alice", "bob", "mm"))
    carol = phone_page(browser, server, users["carol"])
    for page in (org, alice, bob, carol, mm):
        open_floor(page, server, "cls")
    # Each holds a quarter: AAPL 25, NVDA 15. The hint gives the fair rate and what is available.
    alice.locator("[data-testid=order-form] [name=limit_rate]").fill("0.3911")
    hint = alice.locator("[data-testid=order-fair-hint]").inner_text()
    assert "1 AAPL ≈ 0.4000 NVDA" in hint and "-2.22% vs fair" in hint and "25 AAPL available" in hint

    said = order(alice, "AAPL", "NVDA", "10", "0.3911")
    assert said.startswith("Order placed: give up to 10 AAPL for NVDA at 0.3911 or better, next batch only")
    assert order(bob, "AAPL", "NVDA", "5", "0,3922", "batches", "3").startswith(
        "Order placed: give up to 5 AAPL for NVDA at 0.3922 or better, 3 batches"
    )
    assert "until cancelled" in order(carol, "NVDA", "AAPL", "1.5", "2.41", "gtc")
    assert "Order placed" in order(mm, "NVDA", "AAPL", "4", "2.45")
    refused = order(carol, "NVDA", "AAPL", "20", "2.4")
    assert refused.startswith("Not enough available: you hold 15.000000 NVDA, 1.500000 reserved")
    alice.locator("[data-testid=available-AAPL]", has_text="15").wait_for(timeout=5_000)

    # Sealed: before the cut nobody sees anyone else's order, its size or its limit, anywhere on the floor.
    for page, others in ((bob, ("0.3911", "2.41", "2.45")), (carol, ("0.3911", "0.3922")), (org, ("0.3911",))):
        text = body(page)
        assert not any(limit in text for limit in others), text
        assert "sealed until its batch clears" in page.locator("#events").inner_text()
    assert alice.locator("#orders [data-testid=my-orders] tr[data-order]").count() == 1
    assert no_sideways_scroll(carol)
    shot(alice, "batch-floor-before-cut")
    phone_shot(carol, "batch-floor-phone-before-cut")

    # The organiser clears now; every floor shows the batch without a reload.
    org.locator("[data-testid=clear-now]").click()
    notice = org.locator("[data-testid=cut-notice]")
    notice.wait_for(timeout=5_000)
    batch = Batch.objects.get(session_id="cls")
    assert batch.outcome == "cleared" and batch.filled == 4, batch.reason
    assert notice.inner_text().startswith("Batch 1 cleared now: 4 of 4 orders filled, volume ")
    prices = {leg: f"{batch.prices[leg] / 1e6:.2f}" for leg in ("AAPL", "NVDA")}
    for page in (org, alice, bob, carol, mm):
        page.locator("[data-testid=last-batch-number]", has_text="batch 1").wait_for(timeout=5_000)
        for leg, price in prices.items():
            assert page.locator(f"[data-testid=batch-price-{leg}]").inner_text() == price
        assert page.locator("[data-testid=batch-filled]").inner_text().startswith("4")
    for name, page in (("alice", alice), ("bob", bob), ("carol", carol), ("mm", mm)):
        fill = Fill.objects.get(batch=batch, participant__username=name)
        row = page.locator("[data-testid=my-fills] tr.last").first
        row.wait_for(timeout=5_000)
        gave = f"{fill.given / 1e6:.6f}".rstrip("0").rstrip(".")
        assert gave in row.inner_text(), (name, row.inner_text())
        held = Holding.objects.get(participant__username=name, session_id="cls", leg=fill.give_leg).qty
        shown = f"{held / 1e6:.6f}"
        for other in (alice, bob, carol):  # everyone's holdings table has the new quantity
            other.locator(f'#holdings tr[data-user="{name}"]', has_text=shown).wait_for(timeout=5_000)
    # Revealed now that their batch cleared: the log tells the orders whole.
    bob.locator("#events", has_text="alice gives up to 10 AAPL for NVDA at 0.3911").wait_for(timeout=5_000)
    # What was said where people acted stays while the batch's push redraws those panels around it.
    org.wait_for_timeout(600)
    assert org.locator("#cut [data-testid=cut-notice]").count() == 1
    assert (
        alice.locator("#orders [data-testid=order-notice]")
        .inner_text()
        .startswith("Order placed: give up to 10 AAPL for NVDA at 0.3911")
    )
    assert carol.locator("#orders [data-testid=order-error]").inner_text().startswith("Not enough available")
    assert no_sideways_scroll(carol)
    shot(alice, "batch-floor-after-cut")
    phone_shot(carol, "batch-floor-phone-after-cut")
    shot(org, "batch-floor-organiser")
    org.goto(f"{server.url}/sessions/cls/monitor")
    org.locator("[data-testid=monitor-batch-1]").wait_for(timeout=5_000)
    assert org.locator("[data-testid=resting-carol]").inner_text() in ("·", "1")
    shot(org, "batch-monitor")
    org.set_viewport_size(PHONE)
    org.reload()
    org.locator("[data-testid=monitor-batch-1]").wait_for(timeout=5_000)
    assert no_sideways_scroll(org)
    shot(org, "batch-monitor-375")


def test_the_scheduler_in_another_process_cuts_and_every_floor_follows(browser, server, users):  # noqa: F811
    create_demo(users, "sched", mechanism="batch", batch_seconds=10)
    tick("sched")
    services.place_order(users["alice"], "sched", "AAPL", "NVDA", "10", "0.39")
    services.place_order(users["mm"], "sched", "NVDA", "AAPL", "4", "2.45")
    alice = signed_in_page(browser, server, users["alice"])
    bob = phone_page(browser, server, users["bob"])
    for page in (alice, bob):
        open_floor(page, server, "sched")
    countdown = alice.locator("[data-testid=cut-countdown]")
    assert re.fullmatch(r"in \d+s", countdown.inner_text()), countdown.inner_text()
    # The cut's instant passes: the floor says so at once, before any scheduler has run.
    alice.wait_for_function(
        "document.querySelector('[data-testid=cut-countdown]').textContent.startsWith('clearing')", timeout=20_000
    )
    phone_shot(bob, "batch-floor-phone-clearing")
    done = subprocess.run(
        [sys.executable, "manage.py", "settle", "--due"],
        cwd=BASE_DIR,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "sched: batch 1: 2 orders filled" in done.stdout, done.stdout + done.stderr
    for page in (alice, bob):
        page.locator("[data-testid=last-batch-number]", has_text="batch 1").wait_for(timeout=5_000)
        page.locator("[data-testid=cut-countdown]", has_text="in ").wait_for(timeout=5_000)  # the next cut
    alice.locator("[data-testid=my-fills] tr.last").wait_for(timeout=5_000)
    assert bob.locator("[data-testid=my-fills]").inner_text().strip() == "No fills yet."
