"""The addresses ./start-demo.sh prints for phones: one usable URL per address (never a list of them run
together, as `http://192.0.2.2,fd00::2:8765/` was), IPv6 in brackets, only the families the server listens
on, nothing a phone cannot open; and the hosts Django must accept for them."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse

import pytest

from sessionsite import lan
from sessionsite.testing import BASE_DIR

ROOM = ["192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1", "127.0.0.1", "::1", "10.0.0.7"]


def test_a_server_on_every_ipv4_interface_is_reachable_at_each_ipv4_address():
    found = lan.reachable(ROOM, "0.0.0.0")
    assert lan.urls(found, 8765, "vm") == ["http://192.0.2.2:8765/", "http://10.0.0.7:8765/", "http://vm:8765/"]
    assert lan.hosts(found, "vm") == ["192.0.2.2", "10.0.0.7", "vm"]


def test_a_server_on_every_interface_of_both_families_lists_ipv6_in_brackets_but_not_link_local():
    found = lan.reachable([*ROOM, "192.0.2.2"], "::")
    assert lan.urls(found, 8765) == ["http://192.0.2.2:8765/", "http://[fd00::2]:8765/", "http://10.0.0.7:8765/"]
    assert lan.hosts(found) == ["192.0.2.2", "[fd00::2]", "10.0.0.7"]


@pytest.mark.parametrize(
    "bind, expected",
    [
        ("192.0.2.2", ["http://192.0.2.2:80/"]),
        ("fd00::2", ["http://[fd00::2]:80/"]),
        ("[fd00::2]", ["http://[fd00::2]:80/"]),
        ("198.51.100.9", ["http://198.51.100.9:80/"]),  # an address the listing lacks: still the one to open
        ("127.0.0.1", []),
    ],
)
def test_a_server_on_one_address_is_reachable_there_only(bind, expected):
    assert lan.urls(lan.reachable(ROOM, bind), 80) == expected


def test_every_url_parses_to_one_host_and_the_port():
    for url in lan.urls(lan.reachable(ROOM, "::"), 8765, "vm"):
        parts = urllib.parse.urlsplit(url)
        assert parts.port == 8765 and parts.path == "/" and "," not in url
        assert parts.hostname in {"192.0.2.2", "fd00::2", "10.0.0.7", "vm"}


def test_garbage_in_the_listing_is_skipped_and_the_name_localhost_is_not_offered(monkeypatch):
    assert lan.reachable(["not-an-address", "", "224.0.0.1", "0.0.0.0", "fe80::1%eth0"], "::") == []
    monkeypatch.setattr(lan.socket, "gethostname", lambda: "localhost")
    assert lan.machine_name() == ""


def test_the_script_prints_one_url_a_line():
    done = subprocess.run(
        [sys.executable, "-m", "sessionsite.lan", "urls", "--bind", "0.0.0.0", "--port", "8765"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        assert line.startswith("http://") and line.endswith(":8765/") and " " not in line and "," not in line
