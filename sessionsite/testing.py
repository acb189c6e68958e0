"""Start the real server for end-to-end tests: daphne in its own process, on the test database file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the test database (after pytest-django created it), for servers started as processes."""
    db = settings.DATABASES["default"]
    name = db["NAME"]
    if db["ENGINE"].endswith("postgresql"):
        from urllib.parse import quote, urlencode

        auth = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db["USER"] else ""
        host = f"{db['HOST'] or 'localhost'}:{db['PORT']}" if db["PORT"] else db["HOST"] or "localhost"
        options = {k: v for k, v in db.get("OPTIONS", {}).items() if isinstance(v, str | int | bool)}
        query = f"?{urlencode(options)}" if options else ""
        return f"postgres://{auth}{host}/{quote(name)}{query}"
    if not name or name == ":memory:" or "mode=memory" in str(name):
        raise RuntimeError("end-to-end tests need a file database (DATABASE_URL=sqlite:///...)")
    return f"sqlite:///{Path(name).resolve()}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update({"DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1", "FEED_POLL_SECONDS": "0.1"})
    env.update(extra)
    return env


class Server:
    """`daphne sessionsite.asgi:application` on 127.0.0.1:<free port>, as users start it."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = child_env(**env)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Server:
        daphne = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "sessionsite.asgi:application",
        ]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(daphne, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited early: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not answer /health within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()
