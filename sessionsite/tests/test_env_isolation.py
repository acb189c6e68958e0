"""The suite passes whatever `.env` holds: `./start-demo.sh` then `./run-tests.sh` (the README's two
commands, in that order) must not hand the demo's settings (nor the passwords a start on the network kept) to
the tests. Settings read no `.env` under
pytest, so neither the test process nor the processes its tests start see a developer's database, key,
demo mode or addresses; a start-demo test's copy of the project gets a newcomer's shell, nothing more."""

from __future__ import annotations

import json
import subprocess

import pytest

from sessionsite.testing import BASE_DIR
from sessionsite.tests.test_start_demo import SHELL_VARIABLES, demo_env, project_copy

pytestmark = pytest.mark.slow

# What a demo (or a developer) leaves in .env.
PLANTED = {
    "DATABASE_URL": "sqlite:///./planted_demo.db",
    "SECRET_KEY": "planted-" + "k3y" * 20,
    "DEMO_MODE": "true",
    "DEMO_OPEN_TO_NETWORK": "true",
    "ALLOW_MANUAL_SETTLE": "false",
    "HOST": "0.0.0.0",
    "PORT": "8765",
    "ALLOWED_HOSTS": "planted.example",
    "NETWORK_URLS": "http://192.0.2.99:8765/",
}

PROBE = """
import json, os, subprocess, sys

import pytest

from django.conf import settings

PLANTED = json.loads({planted!r})


def test_the_settings_of_the_test_run_are_not_the_env_files():
    assert not settings.DEMO_MODE and not settings.DEMO_OPEN_TO_NETWORK and settings.ALLOW_MANUAL_SETTLE
    assert settings.SECRET_KEY != PLANTED["SECRET_KEY"]
    assert "planted" not in settings.DATABASES["default"]["NAME"]
    assert settings.NETWORK_URLS == [] and "planted.example" not in settings.ALLOWED_HOSTS


@pytest.mark.django_db
def test_seed_demo_gives_demo_whatever_a_network_start_kept():
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("seed_demo", stdout=StringIO())
    assert get_user_model().objects.get(username="organiser").check_password("demo")


def test_the_processes_tests_start_get_none_of_it():
    assert sorted(k for k, v in os.environ.items() if PLANTED.get(k) == v) == []
    code = "import django; django.setup(); from django.conf import settings as s; print(s.DEMO_MODE, s.SECRET_KEY)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", settings.SECRET_KEY], done.stderr
"""


def test_a_demos_env_file_changes_nothing_in_the_suite(tmp_path):
    copy = project_copy(tmp_path / "clone")
    (copy / ".env").write_text("".join(f"{k}={v}\n" for k, v in PLANTED.items()))
    (copy / ".demo").mkdir()  # and what a start on the network keeps
    (copy / ".demo" / "passwords").write_text("organiser planted-1\nalice planted-2\nbob planted-3\nmm planted-4\n")
    (copy / "test_probe_env.py").write_text(PROBE.format(planted=json.dumps(PLANTED)))
    done = subprocess.run(
        [str(copy / ".venv/bin/python"), "-m", "pytest", "test_probe_env.py", "-q"],
        cwd=copy,
        env=demo_env(0),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_a_start_demo_copy_gets_a_newcomers_shell_only(monkeypatch):
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    env = demo_env(9999)
    assert set(env) <= SHELL_VARIABLES | {"PORT", "CI"} and env["PORT"] == "9999"
    assert not (BASE_DIR / "test_probe_env.py").exists()
