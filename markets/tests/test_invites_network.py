"""The invites page opened at 127.0.0.1 while the server listens on the network (NETWORK_URLS, which
./start-demo.sh sets): its links and QR codes name 127.0.0.1, which no phone can open, so the page says
so and offers itself at the network addresses. Opened at a network address, or on a server that listens on
this machine only, it says nothing."""

from __future__ import annotations

import shutil

import pytest

from conftest import create_demo
from markets.services import invites
from markets.tests.test_browser import ARTIFACTS, CHROMIUM, browser, signed_in_page  # noqa: F401
from sessionsite.testing import Server

NETWORK = ["http://192.0.2.2:8765/", "http://[fd00::2]:8765/", "http://vm:8765/"]


@pytest.fixture
def pre(users, settings):
    settings.NETWORK_URLS = NETWORK
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "192.0.2.2", "[fd00::2]", "vm"]
    create_demo(users, "pre", open_it=False)
    invites.create_invite(users["org"], "pre", "trader", 30)
    return users


def page(client, users, host: str) -> str:
    client.force_login(users["org"])
    response = client.get("/sessions/pre/invites", HTTP_HOST=host)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"])
def test_opened_at_this_machines_own_address_the_page_offers_the_network_ones(client, pre, host):
    html = page(client, pre, host)
    assert 'data-testid="network-notice"' in html
    assert f"You opened this page at {host}, this machine's own address: phones cannot follow" in html
    for base in NETWORK:
        assert f'href="{base}sessions/pre/invites"' in html
    assert f"http://{host}/join/" in html  # the links themselves are as this request made them


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["192.0.2.2:8765", "[fd00::2]:8765", "vm:8765"])
def test_opened_at_a_network_address_it_says_nothing(client, pre, host):
    html = page(client, pre, host)
    assert "network-notice" not in html and f"http://{host}/join/" in html


@pytest.mark.django_db
def test_a_server_on_this_machine_only_says_nothing(client, pre, settings):
    settings.NETWORK_URLS = []
    assert "network-notice" not in page(client, pre, "127.0.0.1:8000")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")
def test_the_notice_on_the_organisers_screen(browser, users, tmp_path):  # noqa: F811
    create_demo(users, "pre", open_it=False, title="Friday class")
    invites.create_invite(users["org"], "pre", "trader", 30)
    server = Server(tmp_path / "daphne.log")
    server.env["NETWORK_URLS"] = f"http://192.0.2.2:{server.port}/ http://[fd00::2]:{server.port}/"
    server.start()
    try:
        org = signed_in_page(browser, server, users["org"])
        org.goto(f"{server.url}/sessions/pre/invites")
        notice = org.locator("[data-testid=network-notice]")
        assert notice.is_visible()
        link = notice.locator("[data-testid=network-url]")
        assert link.get_attribute("href") == f"http://192.0.2.2:{server.port}/sessions/pre/invites"
        org.screenshot(path=str(ARTIFACTS / "invites-network-notice.png"))
    finally:
        server.stop()
