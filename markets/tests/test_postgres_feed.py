"""What a PostgreSQL user expects of the live feed: a commit in another process reaches the browsers at
once (LISTEN/NOTIFY wakes the follower; the poll is only the fallback), and a daphne process holds a few
long-lived connections instead of opening one per poll."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import websockets
from django.db import connection

from conftest import create_demo
from markets import tokens
from sessionsite import testing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only("LISTEN/NOTIFY and pg_stat_activity are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


POOL = 4  # each daphne's pool, at most


def daphnes_connections() -> list[tuple[str, int, object]]:
    """(daphne, pid, backend start) of every connection the daphnes opened (named by application_name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, pid, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'sc-daphne-%%'"
        )
        return sorted(cursor.fetchall())


def commit_rfq_elsewhere() -> float:
    """An RFQ by a `manage.py shell` process; the wall-clock time right after its commit."""
    code = (
        "import time; from django.contrib.auth import get_user_model; from markets import services; "
        "services.request_rfq(get_user_model().objects.get(username='alice'), 'demo', 'AAPL', 'NVDA', '3'); "
        "print(time.time())"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        cwd=testing.BASE_DIR, env=testing.child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


async def arrival(url: str, token: str, ready: asyncio.Event) -> float:
    """Connect to the session's JSON stream, say ready once past the backlog, return when an RFQ arrives."""
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        while True:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
            except TimeoutError:
                ready.set()
                continue
            if message["type"] == "event" and message["event"]["type"] == "RFQRequested":
                return time.time()


def test_a_commit_elsewhere_wakes_every_daphne_at_once_on_few_lasting_connections(users, tmp_path):
    create_demo(users)
    token = tokens.create_token(users["org"])[1]
    # One daphne polls 10 s apart: only a notification can bring it the event within the second. The other
    # polls every 0.2 s, as by default: ten polls while the connections are watched.
    url = testing.test_database_url()
    servers = [
        testing.Server(
            tmp_path / f"daphne-{i}.log",
            FEED_POLL_SECONDS=poll,
            DB_POOL_MAX_SIZE=str(POOL),
            DATABASE_URL=f"{url}{'&' if '?' in url else '?'}application_name=sc-daphne-{i}",
        ).start()
        for i, poll in enumerate(("10", "0.2"))
    ]
    try:

        async def run() -> tuple[list[float], float, list, list]:
            ready = [asyncio.Event() for _ in servers]
            urls = [s.url.replace("http", "ws") + "/ws/sessions/demo" for s in servers]
            waits = [asyncio.create_task(arrival(u, token, r)) for u, r in zip(urls, ready, strict=True)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
            before = await asyncio.to_thread(daphnes_connections)
            await asyncio.sleep(2.0)
            after = await asyncio.to_thread(daphnes_connections)
            committed = await asyncio.to_thread(commit_rfq_elsewhere)
            arrived = await asyncio.wait_for(asyncio.gather(*waits), 8)
            return arrived, committed, before, after

        arrived, committed, before, after = asyncio.run(run())
    finally:
        for server in servers:
            server.stop()
    delays = [a - committed for a in arrived]
    assert max(delays) < 1.0, f"pushed {delays} s after the commit: the notification did not wake the feed"
    assert before == after, "connections were opened or closed while the floors sat idle"
    # Per daphne: its pool (the feed keeps one of them) and its listener; never one per poll.
    for i in range(len(servers)):
        mine = [c for c in after if c[0] == f"sc-daphne-{i}"]
        assert 2 <= len(mine) <= POOL + 1, after
