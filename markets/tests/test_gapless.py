"""No event lost, none twice, on either engine: eight writers on two sessions commit as they please (on
PostgreSQL out of seq order) while sixteen programs follow the JSON stream of real daphne processes.
Ids never collide across sessions, so no writer is told "busy"."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import websockets

from conftest import create_demo
from ledger.models import Event
from markets import services, tokens
from markets.errors import DomainError
from sessionsite.testing import Server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SESSIONS = ("alpha", "beta")
WRITERS_PER_SESSION = 4
RFQS_PER_WRITER = 8  # each an RFQRequested and an RFQCancelled
CLIENTS_PER_SESSION = 8


def write(user, session_id: str, failures: list) -> None:
    from django.db import connection

    try:
        for _ in range(RFQS_PER_WRITER):
            rfq = services.request_rfq(user, session_id, "AAPL", "NVDA", "1")
            services.cancel_rfq(user, rfq.id)
    except DomainError as exc:
        failures.append(f"{exc.code}: {exc.message}")
    finally:
        connection.close()


async def follow(url: str, token: str, expected: int, done: asyncio.Event) -> list[int]:
    """The seqs of the session's events as the stream sends them, until `expected` arrived."""
    seqs: list[int] = []
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        while len(seqs) < expected:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
            except TimeoutError:
                break
            if message["type"] == "event":
                seqs.append(message["event"]["seq"])
    return seqs


def test_concurrent_writers_and_stream_clients_lose_nothing(users, tmp_path):
    for sid in SESSIONS:
        create_demo(users, sid)
    writers = [users[name] for name in ("alice", "bob", "mm", "mm2")]
    token = tokens.create_token(users["org"])[1]
    servers = [Server(tmp_path / f"daphne-{i}.log").start() for i in range(2)]
    try:
        before = {sid: Event.objects.filter(stream=f"session-{sid}").count() for sid in SESSIONS}
        expected = {sid: before[sid] + WRITERS_PER_SESSION * RFQS_PER_WRITER * 2 for sid in SESSIONS}
        failures: list[str] = []

        async def run() -> dict[str, list[list[int]]]:
            done = asyncio.Event()
            followers = {
                sid: [
                    asyncio.create_task(
                        follow(
                            f"{servers[i % 2].url.replace('http', 'ws')}/ws/sessions/{sid}", token, expected[sid], done
                        )
                    )
                    for i in range(CLIENTS_PER_SESSION)
                ]
                for sid in SESSIONS
            }
            await asyncio.sleep(1.0)  # every client is connected and past its backlog
            threads = [
                threading.Thread(target=write, args=(user, sid, failures))
                for sid in SESSIONS
                for user in writers[:WRITERS_PER_SESSION]
            ]
            await asyncio.to_thread(lambda: [t.start() for t in threads] and [t.join(120) for t in threads])
            return {sid: list(await asyncio.gather(*tasks)) for sid, tasks in followers.items()}

        seen = asyncio.run(run())
    finally:
        for server in servers:
            server.stop()
    assert failures == [], failures  # no "busy", no id taken twice
    for sid in SESSIONS:
        stored = list(Event.objects.filter(stream=f"session-{sid}").order_by("seq").values_list("seq", flat=True))
        assert len(stored) == expected[sid]
        for client, seqs in enumerate(seen[sid]):
            assert seqs == stored, (
                f"{sid} client {client}: {len(set(stored) - set(seqs))} missed, in order: {seqs == sorted(seqs)}"
            )
