"""The signing key is never one anyone else knows: without SECRET_KEY (the README's by-hand steps) each
installation makes its own on first use, keeps it in `.secret_key` (mode 600) and every process of it
uses that one; the development key earlier versions fell back to is refused, and so is what it signed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client, override_settings

from conftest import create_demo
from markets.models import Participant
from markets.services import invites
from sessionsite.config import ConfigError, kept_secret
from sessionsite.testing import BASE_DIR

PUBLIC_KEY = "django-insecure-session-contracts-development-key"  # in this project's history: known to all
PRINT_KEY = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"


def fresh_env(key_file: Path, **extra: str) -> dict[str, str]:
    """A process of an installation with no SECRET_KEY anywhere (no environment variable, no .env)."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return (
        env
        | {"ENV_FILE": "", "SECRET_KEY_FILE": str(key_file), "DJANGO_SETTINGS_MODULE": "sessionsite.settings"}
        | extra
    )


@pytest.mark.slow
def test_processes_started_together_on_a_fresh_install_agree_on_one_private_random_key(tmp_path):
    key_file = tmp_path / "install" / ".secret_key"
    key_file.parent.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PRINT_KEY], cwd=BASE_DIR, env=fresh_env(key_file), stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(keys) == 1, keys
    key = keys.pop()
    assert key == key_file.read_text().strip() and len(key) >= 50 and key != PUBLIC_KEY
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == [".secret_key"]  # no draft left behind
    # A later process of the same installation signs with the same key; another installation with its own.
    later = subprocess.run(
        [sys.executable, "-c", PRINT_KEY], cwd=BASE_DIR, env=fresh_env(key_file), capture_output=True
    )
    other = subprocess.run(
        [sys.executable, "-c", PRINT_KEY], cwd=BASE_DIR, env=fresh_env(tmp_path / "k2"), capture_output=True
    )
    assert later.stdout.decode().strip() == key and other.stdout.decode().strip() not in {key, "", PUBLIC_KEY}


def test_threads_racing_to_make_the_key_all_get_the_one_that_was_kept(tmp_path):
    for round_ in range(10):
        path = tmp_path / f"key{round_}"
        got: list[str] = []
        threads = [threading.Thread(target=lambda p=path, g=got: g.append(kept_secret(p))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(got) == 6 and set(got) == {path.read_text().strip()}


def test_this_test_run_signs_with_no_public_key():
    assert settings.SECRET_KEY != PUBLIC_KEY and not settings.SECRET_KEY.startswith("django-insecure")
    assert PUBLIC_KEY not in getattr(settings, "SECRET_KEY_FALLBACKS", [])


@pytest.mark.slow
@pytest.mark.parametrize("given", [PUBLIC_KEY, "django-insecure-anything-else"])
def test_a_published_key_is_refused_at_start_saying_why(tmp_path, given):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=fresh_env(tmp_path / "key", SECRET_KEY=given),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "SECRET_KEY is a published development key" in done.stderr


def test_an_empty_or_unwritable_key_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="holds no usable key"):
        kept_secret(empty)
    with pytest.raises(ConfigError, match="cannot make the secret key file"):
        kept_secret(tmp_path / "no" / "such" / "dir" / "key")


@pytest.mark.slow
def test_check_deploy_finds_no_known_key_without_secret_key(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=fresh_env(tmp_path / "key"),
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in done.stderr and "System check identified" in done.stdout + done.stderr
    assert "security.W009" not in done.stdout + done.stderr


@pytest.mark.django_db
def test_a_joined_cookie_signed_with_the_public_key_is_refused(users):
    """Anyone holding an invite link could forge the "joined" cookie with the public key: it counts for nothing."""
    create_demo(users, "pre", open_it=False)
    invite = invites.create_invite(users["org"], "pre", "trader", 3)
    from markets import invite_rules

    link = f"/join/{invite_rules.sign(invite.token_id)}"
    guest = Client()
    guest.post(link, {"name": "Zoe"})
    zoe = Participant.objects.get(session_id="pre", username="Zoe").user_id
    name, salt = "sc_joined_pre", "markets.invites.returning:pre"
    forger = Client()
    made = HttpResponse()
    value = invite_rules.returning_value(invite.token_id, zoe)  # what the join page's cookie holds
    with override_settings(SECRET_KEY=PUBLIC_KEY):  # signed with the public key
        made.set_signed_cookie(name, value, salt=salt)
    forger.cookies[name] = made.cookies[name].value
    assert "Continue as" not in forger.get(link).content.decode()
    assert forger.post(link, {"action": "continue"}).status_code == 409
    assert "_auth_user_id" not in forger.session
    # The same cookie signed with this installation's key is what a browser that joined holds.
    assert guest.cookies[name].value.rsplit(":", 2)[0] == value
