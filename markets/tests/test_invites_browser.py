"""The invite flow end to end in a real Chromium against daphne: the organiser makes a link on the
invites page, a laptop and a phone (375 px wide, no sideways scroll) open it, type a name, and both land
on the floor, joined. The screenshots of the invites page and the phone's join page go to docs/."""

from __future__ import annotations

import pytest

from conftest import create_demo, engine
from markets.models import Invite, Participant
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, server, signed_in_page  # noqa: F401
from sessionsite.testing import BASE_DIR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]

SHOTS = BASE_DIR / "docs" if engine() == "sqlite" else ARTIFACTS
PHONE = {"width": 375, "height": 740}


def scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def join_as(page, url: str, name: str) -> None:
    page.goto(url)
    page.locator("#join-name").fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    page.wait_for_url("**/sessions/pre/")


def test_an_invite_link_on_a_laptop_and_a_phone_lands_both_on_the_floor(browser, server, users):  # noqa: F811
    create_demo(users, "pre", open_it=False, title="Friday class")
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/sessions/pre/invites")

    form = org.locator("[data-testid=create-invite]")
    form.locator("select[name=role]").select_option("trader")
    form.locator("input[name=max_uses]").fill("30")
    form.get_by_role("button", name="Create link").click()
    row = org.locator("[data-testid=links] tr.invite").first
    row.wait_for(timeout=5_000)
    url = row.get_by_role("textbox", name="Invite link").input_value()
    assert url.startswith(f"{server.url}/join/")
    org.locator("img[data-testid=qr]").first.wait_for(timeout=5_000)
    # the SVG loaded (and drew): wait for the image itself, not only its tag
    org.wait_for_function("document.querySelector('img[data-testid=qr]').naturalWidth > 100", timeout=5_000)

    bulk = org.locator("[data-testid=bulk-form]")
    bulk.locator("textarea").fill('Zoe\nYan, maker\n"Smith, Ann",trader')
    bulk.get_by_role("button", name="Make personal links").click()
    org.locator("[data-testid=bulk-result]").wait_for(timeout=5_000)
    assert org.locator("[data-testid=personal] tr.invite").count() == 3  # the list below was swapped too

    laptop = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    join_as(laptop, url, "Ann Laptop")
    assert laptop.locator("[data-testid=signed-in-as]").inner_text() == "Ann Laptop"
    assert "You are Ann Laptop, trader." in laptop.locator("#controls").inner_text()  # as typed

    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
    phone.goto(url)
    assert scroll_width(phone) <= 375
    phone.locator("#join-name").fill("Zoë Phone")
    phone.screenshot(path=str(SHOTS / "join-phone.png"))
    phone.get_by_role("button", name="Join", exact=True).click()
    phone.wait_for_url("**/sessions/pre/")
    assert phone.locator("[data-testid=signed-in-as]").inner_text() == "Zoë Phone"
    assert set(Participant.objects.filter(session_id="pre", role="trader").values_list("username", flat=True)) >= {
        "Ann-Laptop",
        "Zoe-Phone",
    }

    # signed out, the phone is offered its place back in one click (this browser only)
    phone.get_by_role("button", name="Sign out").click()
    phone.goto(url)
    phone.get_by_role("button", name="Continue as Zoë Phone").wait_for(timeout=5_000)
    assert scroll_width(phone) <= 375
    phone.screenshot(path=str(ARTIFACTS / "join-phone-continue.png"))
    phone.get_by_role("button", name="Continue as Zoë Phone").click()
    phone.wait_for_url("**/sessions/pre/")
    assert phone.locator("[data-testid=signed-in-as]").inner_text() == "Zoë Phone"

    # the organiser's page counts them, and shows what a pasted list makes; it is usable on a phone too
    org.reload()
    assert org.locator("[data-testid=links] [data-testid=uses]").first.inner_text() == "2 / 30"
    assert Invite.objects.get(name="", session_id="pre").uses == 2
    bulk = org.locator("[data-testid=bulk-form]")
    bulk.locator("textarea").fill("Wu\nXi, maker")
    bulk.get_by_role("button", name="Make personal links").click()
    org.locator("[data-testid=bulk-result]").wait_for(timeout=5_000)
    org.screenshot(path=str(SHOTS / "invite.png"), full_page=True)
    org.set_viewport_size(PHONE)
    assert scroll_width(org) <= 375
    org.screenshot(path=str(ARTIFACTS / "invites-phone.png"), full_page=True)
