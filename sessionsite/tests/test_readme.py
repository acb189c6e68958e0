"""The README and the pages it links (docs/) cannot rot: their commands are checked against the code,
their links lead somewhere, and the API walkthrough is run as printed (bash + curl) against a real
daphne on the test database."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from django.core.management import call_command, get_commands

from sessionsite.testing import BASE_DIR, Server, child_env

README = (BASE_DIR / "README.md").read_text()
PAGES = {path.name: path.read_text() for path in sorted((BASE_DIR / "docs").glob("*.md"))}
DOCS = "\n".join([README, *PAGES.values()])  # what a reader of the README can reach


def blocks(lang: str = "bash", text: str = DOCS) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_starts_with_the_two_commands():
    first = blocks(text=README)[0].splitlines()
    assert first[0].startswith("./start-demo.sh") and first[1].startswith("./run-tests.sh")


def test_the_readme_is_a_front_door_and_every_link_in_the_docs_leads_somewhere():
    assert len(README.split()) < 1500, "the README is the front door: engineering detail belongs in docs/"
    for name, text in {"README.md": README, **{f"docs/{n}": t for n, t in PAGES.items()}}.items():
        here = (BASE_DIR / name).parent
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (here / target).exists(), f"{name} links to {target}, which does not exist"
        for page, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
            heading_of = (here / page).read_text() if page else text
            anchors = {_anchor(h) for h in re.findall(r"(?m)^#+ (.+)$", heading_of)}
            assert anchor in anchors, f"{name} links to {page}#{anchor}, a heading that does not exist"


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_manage_py_command_and_flag_in_the_readme_exists():
    lines = re.findall(r"python manage\.py ([a-z_]+)([^\n`|]*)", DOCS)
    assert len(lines) >= 10
    commands = get_commands()
    for name, rest in lines:
        assert name in commands, f"the docs mention an unknown command {name}"
        flags = set(re.findall(r"(--[a-z][a-z-]*)", rest))
        if not flags:
            continue
        helptext = subprocess.run(
            [sys.executable, "manage.py", name, "--help"], cwd=BASE_DIR, capture_output=True, text=True, env=child_env()
        ).stdout
        for flag in flags:
            assert flag in helptext, f"the docs: {name} has no {flag}"


def test_start_demo_flags_in_the_readme_exist():
    script = (BASE_DIR / "start-demo.sh").read_text()
    for flag in ("--replay", "--reset", "--port", "--no-browser"):
        assert f"`{flag}" in DOCS, f"the docs do not document {flag}"
        assert f"        {flag})" in script, f"start-demo.sh does not handle {flag}"


def test_configuration_table_names_real_settings(settings):
    for name in (
        "ALLOW_MANUAL_SETTLE",
        "INVARIANT_TOLERANCE",
        "DEMO_MODE",
        "FEED_POLL_SECONDS",
        "FEED_PUSH_GAP_SECONDS",
    ):
        assert f"`{name}`" in PAGES["operations.md"] and hasattr(settings, name)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_api_walkthrough_runs_as_printed(tmp_path):
    call_command("seed_demo", verbosity=0)
    script = next(b for b in blocks() if "create_api_token organiser" in b)
    server = Server(tmp_path / "daphne.log").start()
    try:
        env = child_env(PATH=f"{BASE_DIR / '.venv' / 'bin'}:/usr/bin:/bin")
        body = script.replace("source .venv/bin/activate\n", "").replace("http://localhost:8000", server.url)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"get_qty": "6.200000"' in out
    payouts = re.search(r'"total": "([0-9.]+)".*?"expected": "([0-9.]+)"', out, flags=re.S)
    assert payouts and payouts.group(1) == payouts.group(2) == "88338.000000000000"
