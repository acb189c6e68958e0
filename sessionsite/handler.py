"""Django's ASGI handler, with each request's middleware and view run in one call on threads the process
keeps (for HTTP; WebSockets go to Channels).

Under ASGI, Django runs the middleware on the event loop and hops to a thread for every sync part of
it: each middleware's `process_request` and `process_response`, the CSRF check, the view. That was a
dozen hops a request, each a wake-up of the loop and of a thread, and the thread was a new one for each
request, so each request also opened a database connection of its own (its statements prepared afresh).
Here the chain runs as a WSGI server runs it: synchronously, in one hop, on one of WEB_THREADS threads
that keep their connection from request to request (closed by CONN_MAX_AGE or when broken, checked
before and after each request as Django's request signals do).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from sessionsite.config import ConfigError


def web_threads() -> int:
    """WEB_THREADS: how many requests of one process run at once (default 4)."""
    value = os.environ.get("WEB_THREADS", "4")
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ConfigError(f"WEB_THREADS={value!r} must be a whole number from 1 to 64")
    return int(value)


class PooledASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(web_threads(), thread_name_prefix="web")
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # one synchronous chain, as under WSGI

    async def get_response_async(self, request: HttpRequest) -> HttpResponse:
        return await sync_to_async(self._respond, thread_sensitive=False, executor=self.executor)(request)

    def _respond(self, request: HttpRequest) -> HttpResponse:
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()
