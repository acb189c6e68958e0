"""Getting back in, in a real Chromium against daphne: a student joins by an invite link on a phone, the
organiser opens the session (it asks first, saying how many joined), and a second browser with no cookies
opens the student's rejoin link, copied from the monitor's dialog, and lands on the same floor with the
same holdings. Screenshots of the monitor's dialog and the floor's "Open this on another device", at
desktop width and at 375 px, go to test-artifacts/."""

from __future__ import annotations

import pytest

from conftest import create_demo
from markets import invite_rules
from markets.models import Participant
from markets.services import invites
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, server, signed_in_page  # noqa: F401
from markets.tests.test_invites_browser import PHONE, join_as, scroll_width

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("shutil").which(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]


def holdings_row(page, username: str) -> str:
    return " ".join(page.locator(f"#holdings tr[data-user='{username}']").inner_text().split())


def test_a_student_on_a_new_phone_gets_back_to_the_same_floor(browser, server, users):  # noqa: F811
    create_demo(users, "pre", open_it=False, title="Friday class")
    invite = invites.create_invite(users["org"], "pre", "trader", 30)
    link = f"{server.url}/join/{invite_rules.sign(invite.token_id)}"

    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
    join_as(phone, link, "Zoë Smith")

    # The organiser opens on the floor: it asks first, with the count.
    org = signed_in_page(browser, server, users["org"])
    org.goto(f"{server.url}/sessions/pre/")
    org.get_by_role("button", name="Open session & allocate").click()
    confirm = org.locator("[data-testid=confirm-open]")
    confirm.wait_for(timeout=5_000)
    said = " ".join(confirm.inner_text().split())
    assert "Open now and allocate the pool among 5 participants: 3 traders, 2 makers." in said
    org.screenshot(path=str(ARTIFACTS / "open-confirm.png"))
    confirm.get_by_role("button", name="Confirm: open & allocate").click()
    org.locator("[data-testid=session-status]", has_text="Open").wait_for(timeout=5_000)

    # The monitor's row for Zoë shows her link and its QR code in a dialog.
    org.goto(f"{server.url}/sessions/pre/monitor")
    org.locator("[data-testid=rejoin-Zoe-Smith]").click()
    dialog = org.locator("[data-testid=rejoin-dialog]")
    dialog.locator("[data-testid=rejoin-url]").wait_for(timeout=5_000)
    assert dialog.is_visible() and dialog.locator("svg").count() == 1
    url = dialog.locator("[data-testid=rejoin-url]").input_value()
    assert url.startswith(f"{server.url}/rejoin/")
    org.screenshot(path=str(ARTIFACTS / "monitor-rejoin-dialog.png"))
    org.set_viewport_size(PHONE)
    assert dialog.is_visible()
    org.screenshot(path=str(ARTIFACTS / "monitor-rejoin-dialog-phone.png"))
    org.set_viewport_size({"width": 1280, "height": 800})
    assert "password" in org.locator("[data-testid=row-alice]").inner_text()  # no link stands in for one

    # A second browser, no cookies: the link signs it in as Zoë, on her floor, with her holdings.
    phone.goto(f"{server.url}/sessions/pre/")
    phone.wait_for_selector("#live.on", timeout=10_000)
    before = holdings_row(phone, "Zoe-Smith")
    laptop = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    laptop.goto(url)
    laptop.locator("[data-testid=rejoin-continue]").click()  # one tap: a GET signs in nobody
    laptop.wait_for_url("**/sessions/pre/")
    assert laptop.locator("[data-testid=signed-in-as]").inner_text() == "Zoë Smith"
    assert "You are Zoë Smith, trader." in laptop.locator("#controls").inner_text()
    assert holdings_row(laptop, "Zoe-Smith") == before and before.split()[1:5] != ["0", "0", "0", "0"]

    # Her own floor offers the link for another device, at desktop width and on the phone.
    for page, name in ((laptop, "floor-rejoin-me"), (phone, "floor-rejoin-me-phone")):
        details = page.locator("[data-testid=rejoin-me]")
        details.locator("summary").click()
        details.locator("[data-testid=rejoin-url]").wait_for(timeout=5_000)
        assert details.locator("[data-testid=rejoin-url]").input_value() == url
        assert scroll_width(page) <= page.viewport_size["width"]
        details.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    # The organiser revokes it: the old link is dead at once, in a third browser.
    org.locator("[data-testid=rejoin-revoke]").click()
    org.locator("[data-testid=rejoin-notice]").wait_for(timeout=5_000)
    assert org.locator("[data-testid=rejoin-url]").input_value() != url
    stranger = browser.new_context().new_page()
    gone = stranger.goto(url)
    assert gone.status == 410 and "was replaced" in stranger.inner_text("body")
    assert Participant.objects.filter(session_id="pre", username="Zoe-Smith").count() == 1

    # A latecomer on a phone opens the invite link after the opening: told plainly, offered to watch.
    late = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
    answer = late.goto(link)
    assert answer.status == 409 and "joining closed when it opened" in late.inner_text("[data-testid=state]")
    assert late.locator("[data-testid=watch]").is_visible() and scroll_width(late) <= 375
    late.screenshot(path=str(ARTIFACTS / "join-latecomer-phone.png"))
