"""Bounded shorting in Chromium against daphne: a trader goes short through the floor, sees what the
accept would do to W before pressing it, sees their margin panel; a price tick turns it reduce-only
without a reload, the previews follow, and the organiser's monitor shows it. Screenshots in
test-artifacts/ (margin-floor.png, margin-monitor.png)."""

from __future__ import annotations

import re

import pytest

from conftest import create_demo
from markets import services
from markets.models import RFQ, Quote
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, add_ticks, browser, open_floor, server, shot, signed_in_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]

U = 10**6


def test_a_short_its_margin_and_reduce_only_live_on_the_floor_and_the_monitor(browser, server, users):  # noqa: F811
    create_demo(users, short_limit="0.2", margin_band="0.15", initial_margin="0.5")
    add_ticks({"AAPL": 100 * U, "NVDA": 50 * U, "META": 80 * U, "ORCL": 20 * U})
    alice = signed_in_page(browser, server, users["alice"])
    mm = signed_in_page(browser, server, users["mm"])
    org = signed_in_page(browser, server, users["org"])
    for page in (alice, mm):
        open_floor(page, server)
    org.goto(f"{server.url}/sessions/demo/monitor")

    # alice holds 25 AAPL and asks to give 40: she would go 15 short.
    form = alice.locator("[data-testid=rfq-form]")
    form.locator("input[name=quantity]").fill("40")
    form.locator("select[name=give_leg]").select_option("AAPL")
    form.locator("select[name=get_leg]").select_option("ORCL")
    form.locator("button").click()
    alice.wait_for_selector("text=alice gives 40 AAPL for ORCL")
    quote_form = mm.locator("[data-testid^=quote-form-]").first
    quote_form.wait_for(timeout=5_000)
    quote_form.locator("input[name=rate]").fill("1.2")
    quote_form.locator("button").click()

    # Before pressing Accept: what it would do to her W, by the commands' rule.
    preview = alice.locator("[data-testid^=preview-]").first
    preview.wait_for(timeout=5_000)
    # W = 15 NVDA x 42.5 + 20 META x 68 + 78 ORCL x 17 - 15 AAPL x 115 = 1,598.50; IM = 0.5 x 1,500.
    assert re.search(
        r"If you accept: W 4,632.50 → 1,598.50, requirement 750.00 · ✓ within the margin", preview.inner_text()
    )
    alice.locator("[data-testid^=accept-]").first.click()

    margin = alice.locator("[data-testid=my-margin]")
    margin.locator("[data-testid=margin-w]", has_text="1,598.50").wait_for(timeout=5_000)
    assert margin.get_attribute("data-status") == "ok"
    assert alice.locator("[data-testid=short-used-AAPL]").inner_text() == "75%"
    assert "OK: W 1,598.50 is above the requirement 750.00" in margin.inner_text()

    # AAPL jumps to 170: W = 3,323.50 - 15 x 195.50 = 391.00 under 0.5 x 15 x 170 = 1,275.00.
    add_ticks({"AAPL": 170 * U})
    alice.locator("[data-testid=my-margin][data-status=reduce_only]").wait_for(timeout=5_000)
    said = alice.locator("[data-testid=margin-said]").inner_text()
    assert said == "Reduce-only: W 391.00 is under the requirement 1,275.00 — only trades that raise W are accepted."

    # She asks to buy AAPL back with ORCL: one quote raises W (let through), one would lower it (refused).
    form.locator("input[name=quantity]").fill("20")
    form.locator("select[name=give_leg]").select_option("ORCL")
    form.locator("select[name=get_leg]").select_option("AAPL")
    form.locator("button").click()
    alice.wait_for_selector("text=alice gives 20 ORCL for AAPL")
    # The makers quote from this process: their quotes reach her floor by push.
    open_rfq = RFQ.objects.filter(session_id="demo", status="open").get()
    good = services.provide_quote(users["mm"], open_rfq.id, "0.2")  # 4 AAPL back: W + 782 - 340
    bad = services.provide_quote(users["mm2"], open_rfq.id, "0.05")  # 1 AAPL back: W + 195.50 - 340
    good_preview = alice.locator(f"[data-testid=preview-{good.id}]")
    good_preview.wait_for(timeout=5_000)
    alice.locator(f"[data-testid=preview-{bad.id}]").wait_for(timeout=5_000)
    assert "W 391.00 → 833.00" in good_preview.inner_text()
    assert "it raises W (you stay reduce-only)" in good_preview.inner_text()
    bad_text = alice.locator(f"[data-testid=preview-{bad.id}]").inner_text()
    assert "✗ Would be refused (margin)" in bad_text and "it would be 246.50" in bad_text

    # The previews follow the prices: AAPL at 175 moves W before and after.
    add_ticks({"AAPL": 175 * U})
    good_preview.locator("text=W 304.75 →").wait_for(timeout=5_000)
    alice.locator("[data-testid=margin-w]", has_text="304.75").wait_for(timeout=5_000)
    alice.set_viewport_size({"width": 1280, "height": 900})
    shot(alice, "margin-floor")

    # Pressing Accept on the refused one: the 409 margin, its figures inline where the quote stands.
    alice.locator(f"[data-testid=accept-{bad.id}]").click()
    error = alice.locator("#board [data-testid=error]")
    error.wait_for(timeout=5_000)
    assert "Margin: you are reduce-only (W 304.75 under the requirement 1,312.50)" in error.inner_text()
    assert Quote.objects.get(id=bad.id).status == "live"  # refused: nothing written
    alice.set_viewport_size({"width": 375, "height": 812})
    alice.evaluate("window.scrollTo(0, 0)")
    alice.screenshot(
        path=str(ARTIFACTS / "margin-floor-phone.png"),
        clip={"x": 0, "y": 0, "width": 375, "height": 1100},
        full_page=True,
    )

    # The organiser's monitor: her row stands out, reduce-only with its figures, live.
    row = org.locator("[data-testid=row-alice]")
    row.locator(".mstatus.reduce_only").wait_for(timeout=10_000)
    org.locator("[data-testid=margin-w-alice]", has_text="304.75").wait_for(timeout=10_000)
    assert org.locator("[data-testid=margin-req-alice]").inner_text() == "1,312.50"
    assert "15 AAPL (75%)" in org.locator("[data-testid=margin-short-alice]").inner_text()
    assert "m-reduce_only" in row.get_attribute("class")
    shot(org, "margin-monitor")


def test_the_create_form_offers_shorting_with_its_defaults_and_refuses_beside_the_field(browser, server, users):  # noqa: F811
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/")
    form = org.locator("#create-form")
    assert not form.locator("input[name=short_limit]").is_visible()  # off by default: its settings hidden
    form.locator("input[name=allow_shorting]").check()
    assert form.locator("input[name=short_limit]").input_value() == "0.2"
    assert form.locator("input[name=margin_band]").input_value() == "0.15"
    assert form.locator("input[name=initial_margin]").input_value() == "0.05"
    form.locator("input[name=session_id]").fill("shorts")
    form.locator("input[name=legs]").fill("AAPL, NVDA")
    form.locator("input[name=q]").fill("100, 60")
    form.locator("input[name=margin_band]").fill("1,5")
    form.locator("button.primary").click()
    error = org.locator("#create-form label.has-error", has_text="Margin band").locator(".error")
    error.wait_for(timeout=5_000)
    assert "margin_band must be above 0 and at most 0.9" in error.inner_text()
    shot(org, "margin-form")
    org.locator("#create-form input[name=margin_band]").fill("0.1")
    org.locator("#create-form button.primary").click()
    org.wait_for_url(f"{server.url}/sessions/shorts/", timeout=10_000)
    from markets.models import Session

    assert Session.objects.get(id="shorts").margin_band == "0.1"


def test_the_order_form_says_what_the_order_would_do_to_w_as_it_is_typed(browser, server, users):  # noqa: F811
    create_demo(users, mechanism="batch", short_limit="0.2", margin_band="0.5", initial_margin="0.5")
    add_ticks({"AAPL": 100 * U, "NVDA": 50 * U, "META": 80 * U, "ORCL": 20 * U})
    alice = signed_in_page(browser, server, users["alice"])
    open_floor(alice, server)
    form = alice.locator("[data-testid=order-form]")
    form.locator("[name=quantity]").fill("40")
    form.locator("[name=give_leg]").select_option("AAPL")
    form.locator("[name=get_leg]").select_option("ORCL")
    form.locator("[name=limit_rate]").fill("1.2")
    preview = alice.locator("[data-testid=order-preview]")
    preview.locator("text=✗ Would be refused (margin)").wait_for(timeout=5_000)
    assert "W -295.00 below the requirement 750.00" in preview.inner_text()
    form.locator("[name=quantity]").fill("20")
    preview.locator("text=✓ within the margin").wait_for(timeout=5_000)
    assert "If it fills whole at its limit: W 2,725.00 → 1,965.00, requirement 0.00" in preview.inner_text()
    form.locator("[data-testid=place-order]").click()
    alice.locator("#orders [data-testid=order-notice]").wait_for(timeout=5_000)
    shot(alice, "margin-order-form")
