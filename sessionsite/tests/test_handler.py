"""HTTP requests under ASGI: the whole middleware chain and the view in one call, on threads the process
keeps, each with its database connection kept from request to request."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db.backends.signals import connection_created

from sessionsite.config import ConfigError
from sessionsite.handler import PooledASGIHandler, web_threads


async def get(app, path: str) -> tuple[int, bytes]:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [(b"host", b"127.0.0.1")]}
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(10)
    body = await comm.receive_output(10)
    await comm.wait(10)
    return start["status"], body["body"]


@pytest.mark.sqlite_only("on PostgreSQL every request takes a connection from the pool and gives it back")
@pytest.mark.django_db(transaction=True)
async def test_requests_share_the_process_threads_and_their_connections(monkeypatch):
    """Ten requests, two at a time, on two threads: at most one connection opened per thread (Django's own
    ASGI handler runs each request on a new thread, which opens a connection of its own)."""
    monkeypatch.setenv("WEB_THREADS", "2")
    app = PooledASGIHandler()
    opened: list[str] = []

    def count(sender, connection, **kwargs):
        opened.append(threading.current_thread().name)

    connection_created.connect(count)
    try:
        for _ in range(5):
            answers = await asyncio.gather(get(app, "/health"), get(app, "/health"))
            assert [status for status, _ in answers] == [200, 200]
    finally:
        connection_created.disconnect(count)
        app.executor.shutdown()
    assert len(opened) <= 2 and all(name.startswith("web") for name in opened), opened


@pytest.mark.parametrize("value", ["0", "many", "65"])
def test_web_threads_must_be_a_sensible_whole_number(monkeypatch, value):
    monkeypatch.setenv("WEB_THREADS", value)
    with pytest.raises(ConfigError, match="WEB_THREADS"):
        web_threads()
