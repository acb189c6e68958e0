"""HTTP requests under ASGI: the request signals, the whole middleware chain and the view in one call,
on threads the process keeps, each with its database connection kept from request to request."""

from __future__ import annotations

import asyncio
import io
import threading
from contextlib import contextmanager

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db.backends.signals import connection_created
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from sessionsite.config import ConfigError
from sessionsite.handler import PooledASGIHandler, web_threads

pytestmark = pytest.mark.skipif(
    settings.STOCK_SERVER, reason="STOCK_SERVER=true: Django's own ASGIHandler serves HTTP, not sessionsite/handler.py"
)


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


# A URLconf of this module's own, for the tests below that need views the site does not have.
def _where(request):
    return HttpResponse(threading.current_thread().name)


@csrf_exempt
def _echo(request):
    return HttpResponse(request.body)


def _stream(request):
    async def chunks():
        for n in range(int(request.GET.get("n", "1000000"))):
            yield f"{n};".encode()
            await asyncio.sleep(0.005)

    return StreamingHttpResponse(chunks())


def _file(request):
    return FileResponse(io.BytesIO(b"x" * 200_000), filename="big.bin")


urlpatterns = [path("where", _where), path("echo", _echo), path("stream", _stream), path("file", _file)]


@contextmanager
def request_signals():
    """The names of the threads request_started and request_finished ran on, as they fire."""
    fired: list[tuple[str, str]] = []

    def started(**kwargs):
        fired.append(("started", threading.current_thread().name))

    def finished(**kwargs):
        fired.append(("finished", threading.current_thread().name))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        yield fired
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)


@pytest.fixture
def app(settings):
    settings.ROOT_URLCONF = __name__
    handler = PooledASGIHandler()
    yield handler
    handler.executor.shutdown()


def communicator(app, path: str, method: str = "GET", headers=(), query: bytes = b"") -> ApplicationCommunicator:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1"), *headers],
    }
    return ApplicationCommunicator(app, scope)


async def streamed(app, path: str, query: bytes = b"") -> tuple[int, list[bytes]]:
    """A GET whose answer comes in parts: its status and every part, read until the last."""
    comm = communicator(app, path, query=query)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(10)
    parts = []
    while True:
        message = await comm.receive_output(10)
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(10)
    return start["status"], parts


async def test_a_request_runs_its_signals_and_its_view_on_one_thread_of_the_pool(app):
    """Django's own handler runs the request signals on a thread it starts for each request: closing
    an unusable connection there would not close the one the view used."""
    with request_signals() as fired:
        status, body = await get(app, "/where")
    view_thread = body.decode()
    assert status == 200 and view_thread.startswith("web")
    assert fired == [("started", view_thread), ("finished", view_thread)]


async def test_a_body_sent_in_parts_reaches_the_view_whole(app):
    comm = communicator(app, "/echo", "POST", [(b"content-length", b"11")])
    await comm.send_input({"type": "http.request", "body": b"hello ", "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"world"})
    start = await comm.receive_output(10)
    body = await comm.receive_output(10)
    await comm.wait(10)
    assert (start["status"], body["body"]) == (200, b"hello world")


async def test_a_request_django_cannot_read_is_refused_with_400(app):
    """A query string that is not UTF-8: Django refuses it before any view, and the request still ends
    with its finish signal."""
    with request_signals() as fired:
        comm = communicator(app, "/where", query=b"q=\xff")
        await comm.send_input({"type": "http.request", "body": b""})
        start = await comm.receive_output(10)
        await comm.receive_output(10)
        await comm.wait(10)
    assert start["status"] == 400
    assert [name for name, _ in fired] == ["started", "finished"]


async def test_a_stream_is_sent_in_its_chunks_then_closed(app):
    with request_signals() as fired:
        status, parts = await streamed(app, "/stream", query=b"n=3")
    assert status == 200
    assert b"".join(parts) == b"0;1;2;"
    assert [name for name, _ in fired] == ["started", "finished"]


async def test_a_stream_stops_when_its_client_goes_away(app):
    """An endless stream ends, and its response is closed, once the client disconnects."""
    with request_signals() as fired:
        comm = communicator(app, "/stream")
        await comm.send_input({"type": "http.request", "body": b""})
        assert (await comm.receive_output(10))["status"] == 200
        assert (await comm.receive_output(10))["body"] == b"0;"
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait(10)  # raises TimeoutError if the stream went on
    assert [name for name, _ in fired] == ["started", "finished"]


async def test_websockets_are_not_served_here(app):
    with pytest.raises(ValueError, match="not 'websocket'"):
        await app({"type": "websocket", "path": "/"}, None, None)


# A file is a sync iterator: Django's ASGI handler reads it through a thread and says so; expected here.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
async def test_a_file_is_sent_in_the_server_s_chunks_not_django_s_4_kb_blocks(app):
    with request_signals() as fired:
        status, parts = await streamed(app, "/file")
    assert status == 200 and b"".join(parts) == b"x" * 200_000
    assert max(len(p) for p in parts) == PooledASGIHandler.chunk_size
    assert [name for name, _ in fired] == ["started", "finished"]
