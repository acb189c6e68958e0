"""Django's ASGI handler, with each HTTP request served in one call on threads the process keeps (for
HTTP; WebSockets go to Channels).

Under ASGI, Django runs the middleware on the event loop and hops to a thread for every sync part of
it: each middleware's `process_request` and `process_response`, the CSRF check, the view. That was a
dozen hops a request, each a wake-up of the loop and of a thread, and the thread was a new one for each
request, so each request also opened a database connection of its own (its statements prepared afresh).
Its request signals (`request_started`, and `request_finished` when the response closes) ran on yet
another thread, started for the request and joined after it.

Here a request runs as a WSGI server runs it: its signals, its middleware and its view, synchronously,
in one hop, on one of WEB_THREADS threads that keep their connection from request to request (closed by
CONN_MAX_AGE or when broken, as Django's request signals check before and after each request). The
event loop only reads the body and writes the response.

It reaches into Django's handler (`read_body`, `create_request`, `send_response`, the request signals):
STOCK_SERVER=true serves with Django's own handler instead (sessionsite/asgi.py).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

from sessionsite.config import ConfigError


def web_threads() -> int:
    """WEB_THREADS: how many requests of one process run at once (default 4)."""
    value = os.environ.get("WEB_THREADS", "4")
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ConfigError(f"WEB_THREADS={value!r} must be a whole number from 1 to 64")
    return int(value)


class _Sent(Exception):
    """The streamed response went out: ends the task group that listened for a disconnect meanwhile."""


class PooledASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(web_threads(), thread_name_prefix="web")
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # one synchronous chain, as under WSGI

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP here, not {scope['type']!r} (WebSockets go to Channels)")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            response = await self._in_pool(self._serve, scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)
                return
            try:  # a stream: stop sending when the client goes away, as Django's own handler does
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self.listen_for_disconnect(receive))
                        await self.send_response(response, send)
                        raise _Sent
                except* (_Sent, RequestAborted):
                    pass
            finally:
                await self._in_pool(response.close)

    def _in_pool(self, fn, *args):
        return sync_to_async(fn, thread_sensitive=False, executor=self.executor)(*args)

    def _serve(self, scope: dict[str, Any], body_file) -> HttpResponseBase:
        """The request from its start signal to its finish signal, on one thread and its connection. A
        response that is not a stream is complete here, so it is closed (request_finished) before it is
        sent; a stream is closed once sent."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size  # as Django's handler: ASGI servers chunk for themselves
        if not response.streaming:
            response.close()
        return response
