"""The demo accounts' passwords: `demo` on this machine; on the network (./start-demo.sh passes
--passwords-file) random ones, made once, kept in a file only its owner reads, given to every demo account,
and kept by every later start: nobody in the room signs in as the organiser with `demo`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from markets import demo

pytestmark = pytest.mark.django_db
NAMES = ["organiser", "alice", "bob", "mm"]


@pytest.fixture
def kept(tmp_path, monkeypatch):
    path = tmp_path / ".demo" / "passwords"
    monkeypatch.setattr(demo, "PASSWORDS_FILE", path)
    return path


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def signs_in(name: str, password: str) -> bool:
    return get_user_model().objects.get(username=name).check_password(password)


def test_on_this_machine_the_password_is_demo(kept):
    assert "password 'demo'" in seed()
    assert all(signs_in(name, "demo") for name in NAMES) and not kept.exists()


def test_a_network_start_replaces_demo_with_random_passwords_kept_private(kept):
    seed()  # an earlier start on this machine: every account has `demo`
    said = seed("--passwords-file", str(kept))
    assert f"passwords in {kept}" in said and "demo'" not in said
    assert kept.stat().st_mode & 0o777 == 0o600
    passwords = demo.read_passwords(kept)
    assert list(passwords) == NAMES and len(set(passwords.values())) == 4
    for name, password in passwords.items():
        assert len(password) == 14 and password != "demo"
        assert signs_in(name, password) and not signs_in(name, "demo"), name


def test_a_restart_keeps_the_passwords_and_what_the_organiser_changed(kept):
    seed("--passwords-file", str(kept))
    first = kept.read_text()
    user = get_user_model().objects.get(username="alice")
    user.set_password("changed-by-hand")
    user.save()
    seed("--passwords-file", str(kept))
    assert kept.read_text() == first
    assert signs_in("organiser", demo.read_passwords(kept)["organiser"]) and signs_in("alice", "changed-by-hand")


def test_accounts_made_later_get_the_kept_passwords_not_demo(kept):
    """A start on this machine after one on the network (or `manage.py seed_demo` by hand, after the
    database was reset): the file is still in force."""
    demo.keep_passwords(NAMES, kept)  # made by a start on the network; then the database was reset
    said = seed()
    assert "passwords in .demo/passwords" in said
    assert signs_in("organiser", demo.read_passwords(kept)["organiser"]) and not signs_in("organiser", "demo")
    assert "password 'other'" in seed("--password", "other")  # said explicitly: that is what new accounts get


def test_a_name_the_file_lacks_gets_a_password_of_its_own(kept):
    kept.parent.mkdir(parents=True)
    kept.write_text("organiser abcd-efgh-jkmn\n")
    seed("--passwords-file", str(kept))
    passwords = demo.read_passwords(kept)
    assert passwords["organiser"] == "abcd-efgh-jkmn" and list(passwords) == NAMES
    assert signs_in("alice", passwords["alice"]) and signs_in("organiser", "abcd-efgh-jkmn")


def test_a_passwords_file_that_cannot_be_written_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="--passwords-file"):
        seed("--passwords-file", str(tmp_path / "file" / "passwords"))
    assert not get_user_model().objects.filter(username="organiser").exists()
