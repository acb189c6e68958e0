"""The README's first command, run the way a newcomer runs it: ./start-demo.sh on a copy of the
repository, a free port, a real browser-less login, prices that move, then ./stop-demo.sh."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sessionsite.testing import BASE_DIR, free_port

pytestmark = pytest.mark.slow


def project_copy(dest: Path) -> Path:
    """The files a clone would have (tracked and not ignored), plus the already-built .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=BASE_DIR,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = BASE_DIR / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    (dest / ".venv").symlink_to(BASE_DIR / ".venv")
    return dest


# What a newcomer's shell has; nothing of this test run's own settings (DATABASE_URL, SECRET_KEY, DEMO_MODE,
# what a developer's .env or environment holds, pytest's marker) reaches the copy.
SHELL_VARIABLES = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYENV_ROOT"}


def demo_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in SHELL_VARIABLES}
    env.update({"PORT": str(port), "CI": "1"})
    return env


def login(base: str, username: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/accounts/login/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    data = urllib.parse.urlencode({"username": username, "password": "demo", "csrfmiddlewaretoken": token}).encode()
    opener.open(
        urllib.request.Request(f"{base}/accounts/login/", data=data, headers={"Referer": base}), timeout=10
    ).read()
    return opener


def aapl_price(opener, base: str) -> str:
    html = opener.open(f"{base}/sessions/demo/", timeout=10).read().decode()
    match = re.search(r'data-testid="price-AAPL">([^<]+)<', html)
    assert match, "the floor shows no AAPL price"
    return match.group(1)


def start(copy: Path, env: dict[str, str], *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./start-demo.sh", "--no-browser", *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(copy: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(copy / ".venv/bin/python"), "manage.py", *args],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def counts(copy: Path, env: dict[str, str]) -> list[str]:
    """Sessions and RFQs in the demo's database."""
    code = "from markets.models import Session, RFQ; print(Session.objects.count(), RFQ.objects.count())"
    return manage(copy, env, "shell", "-v0", "-c", code).stdout.split()


def pids(copy: Path) -> list[int]:
    return [int(p.read_text()) for p in (copy / ".demo").glob("*.pid")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_start_demo_serves_a_live_floor_and_stop_demo_ends_everything(tmp_path):
    copy = project_copy(tmp_path / "clone")
    port = free_port()
    env = demo_env(port)
    started = start(copy, env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/sessions/demo/" in started.stdout and "./stop-demo.sh" in started.stdout
        assert "WARNING" not in started.stdout  # loopback only: nothing to warn about
        started_pids = pids(copy)
        assert len(started_pids) == 2 and all(alive(p) for p in started_pids)
        assert urllib.request.urlopen(f"{base}/health", timeout=5).status == 200
        # A secret key of its own, made on the first run and kept in .secret_key, readable by its owner only.
        secret = (copy / ".secret_key").read_text()
        assert len(secret.strip()) >= 60 and "insecure" not in secret
        assert (copy / ".secret_key").stat().st_mode & 0o077 == 0 and not (copy / ".env").exists()
        assert (copy / ".demo" / "admin-password").stat().st_mode & 0o077 == 0

        opener = login(base, "alice")
        first = aapl_price(opener, base)
        deadline = time.monotonic() + 20
        later = first
        while later == first and time.monotonic() < deadline:
            time.sleep(0.5)
            later = aapl_price(opener, base)
        assert later != first, "prices did not move"

        # Running it twice seeds nothing twice, starts no second server, and says where the demo is.
        again = start(copy, env, timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout and f"{base}/sessions/demo/" in again.stdout
        assert pids(copy) == started_pids
        assert (copy / ".secret_key").read_text() == secret
        seeded = manage(copy, env, "seed_demo")
        assert seeded.returncode == 0, seeded.stderr
        assert counts(copy, env) == ["1", "2"]
    finally:
        stopped = subprocess.run(["./stop-demo.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0
    assert "stopped daphne" in stopped.stdout and "stopped oracle" in stopped.stdout
    for pid in started_pids:
        assert not alive(pid)
    twice = subprocess.run(["./stop-demo.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=60)
    assert twice.returncode == 0 and "nothing to stop" in twice.stdout


def time_wait_on(port: int) -> int:
    """Connections on `port` in TIME-WAIT (closed by the server a moment ago), or -1 without `ss`."""
    if not shutil.which("ss"):
        return -1
    listed = subprocess.run(["ss", "-tanH", "state", "time-wait", f"sport = :{port}"], capture_output=True, text=True)
    return len([line for line in listed.stdout.splitlines() if line.strip()])


def test_start_demo_restarts_what_a_newcomer_left_behind(tmp_path):
    """A half-dead demo is started again, naming the part that had stopped; stop-then-start at once is not
    blocked by the last run's closed connections; a settled demo gets a fresh session; --reset on a running
    demo leaves it running, afresh."""
    copy = project_copy(tmp_path / "clone")
    port = free_port()
    env = demo_env(port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert start(copy, env).returncode == 0
        # daphne dies, the oracle lives: not "already running" but started again.
        daphne = int((copy / ".demo" / "daphne.pid").read_text())
        os.kill(daphne, signal.SIGKILL)
        while alive(daphne):
            time.sleep(0.05)
        revived = start(copy, env)
        assert revived.returncode == 0, revived.stdout + revived.stderr
        assert "The demo's daphne had stopped" in revived.stdout and "already running" not in revived.stdout
        assert len(pids(copy)) == 2 and all(alive(p) for p in pids(copy))
        for _ in range(5):  # connections the server closes: they linger in TIME-WAIT after it stops
            assert urllib.request.urlopen(f"{base}/health", timeout=5).status == 200

        # The demo is settled; stop it and start it again at once.
        assert manage(copy, env, "settle", "demo").returncode == 0
        assert subprocess.run(["./stop-demo.sh"], cwd=copy, env=env, capture_output=True, timeout=60).returncode == 0
        lingering = time_wait_on(port)
        fresh = start(copy, env)
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert lingering != 0, "no connection was left in TIME-WAIT: the restart proved nothing"
        assert "already in use" not in fresh.stderr
        # The settled demo keeps its history; the new run trades in demo-2, seeded afresh.
        assert f"{base}/sessions/demo-2/" in fresh.stdout
        assert counts(copy, env) == ["2", "4"]
        assert (copy / ".demo" / "url").read_text().strip() == f"{base}/sessions/demo-2/"

        # --reset on a running demo: stopped, wiped and running again (not left down).
        reset = start(copy, env, "--reset")
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert f"{base}/sessions/demo/" in reset.stdout and counts(copy, env) == ["1", "2"]
        assert len(pids(copy)) == 2 and all(alive(p) for p in pids(copy))
        assert urllib.request.urlopen(f"{base}/sessions/demo/", timeout=5).status == 200
    finally:
        subprocess.run(["./stop-demo.sh"], cwd=copy, env=env, capture_output=True, timeout=60)


def test_start_demo_fails_loudly_when_the_oracle_dies_and_leaves_nothing_running(tmp_path):
    """A replay file the oracle refuses: the script shows the oracle's own error and stops the server."""
    copy = project_copy(tmp_path / "clone")
    (copy / "broken.csv").write_text("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,1_065.5\n")
    result = subprocess.run(
        ["./start-demo.sh", "--no-browser", "--replay-csv", "broken.csv"],
        cwd=copy,
        env=demo_env(free_port()),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "demo is running" not in result.stdout
    assert "error: the oracle did not start" in result.stderr
    assert "broken.csv:2:5: ORCL: price must be a number, not '1_065.5'" in result.stderr
    assert not list((copy / ".demo").glob("*.pid"))


def _netns_prefix() -> list[str] | None:
    """A private network namespace (only its own loopback), where binding every interface exposes nothing."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=20)
    return (
        ["unshare", "--net", "bash", "-c", 'ip link set lo up && exec "$@"', "netns"] if probe.returncode == 0 else None
    )


@pytest.mark.skipif("_netns_prefix() is None", reason="needs `unshare --net` (root or user namespaces) and iproute2")
def test_start_demo_warns_when_it_listens_beyond_loopback(tmp_path):
    """HOST=0.0.0.0, inside a private network namespace so that nothing is really exposed."""
    copy = project_copy(tmp_path / "clone")
    env = demo_env(free_port()) | {"HOST": "0.0.0.0"}
    script = "./start-demo.sh --no-browser; rc=$?; ./stop-demo.sh >/dev/null; exit $rc"
    result = subprocess.run(
        [*_netns_prefix(), "bash", "-c", script], cwd=copy, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: the demo listens on 0.0.0.0, beyond this machine" in result.stdout
    assert "answers only this machine (DEMO_OPEN_TO_NETWORK=true would open it)" in result.stdout
    opened = subprocess.run(
        [*_netns_prefix(), "bash", "-c", script],
        cwd=copy,
        env=env | {"DEMO_OPEN_TO_NETWORK": "true"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "is OPEN to the network (DEMO_OPEN_TO_NETWORK=true)" in opened.stdout, opened.stdout + opened.stderr


def test_start_demo_names_the_process_holding_a_taken_port(tmp_path):
    import socket

    copy = project_copy(tmp_path / "clone")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            ["./start-demo.sh", "--no-browser"],
            cwd=copy,
            env=demo_env(port),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "PORT=8001 ./start-demo.sh" in result.stderr
    if shutil.which("ss") or shutil.which("lsof"):
        assert f"by process {os.getpid()}" in result.stderr  # this test holds the port
    assert not (copy / ".demo" / "daphne.pid").exists()


@pytest.mark.parametrize("script", ["./start-demo.sh", "./run-tests.sh"])
def test_scripts_say_exactly_what_is_missing_without_python_312(tmp_path, script):
    """On a machine whose only Pythons are older than 3.12 (here: none at all on PATH)."""
    copy = project_copy(tmp_path / "clone")
    (copy / ".venv").unlink()  # a fresh clone has no .venv
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "dirname", "mkdir", "cat", "sha256sum", "cut", "basename", "rm", "touch", "sed", "uname"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    env = {"PATH": str(tools), "HOME": str(tmp_path / "home"), "PORT": str(free_port()), "CI": "1"}
    result = subprocess.run(
        [str(tools / "bash"), script], cwd=copy, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Python 3.12 or newer is required and none was found" in result.stderr
    assert not (copy / ".venv").exists()
