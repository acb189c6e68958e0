"""Changes to the servers underneath daphne (autobahn for WebSockets, Twisted for HTTP), applied when the
ASGI app loads.

Every WebSocket connect makes autobahn format its whole configuration with `pprint.pformat` for a debug
line, before it knows whether debug lines are logged (they are not): in a reconnect storm of 500
sockets that formatting was 40% of the event loop's time. The patch hands the debug line a value that
formats itself only when the line is written, so a server logging at debug level prints the same.

A push goes to hundreds of sockets with the same text (every watcher of a floor gets the same message):
daphne puts each socket's protocol in its scope (`markets.push.frames.SOCKET`), so a push frames a
text once and writes the same frame to each (`markets.push.frames.send_shared`).

Twisted's HTTP request parses every POSTed form body into `request.args` before daphne sees the request,
and answers a multipart body it cannot parse (a bad boundary) with a bare, empty 400 and a closed
connection: no JSON error under /api/, no page. Daphne never reads `args` (it hands the body to Django),
so that parsing is switched off: Django reads the body, once, and answers as for any other bad body.
"""

from __future__ import annotations

import pprint
from typing import Any


class LazyFormat:
    """pprint.pformat(obj), done when (and if) the log line is written."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any, *args: Any, **kwargs: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pprint.pformat(self.obj)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def patch() -> None:
    from autobahn.websocket import protocol
    from daphne.server import Server

    from markets.push.frames import SOCKET

    _no_form_parsing()
    if getattr(protocol, "pformat", None) is pprint.pformat:
        protocol.pformat = LazyFormat
        # The module's one other use must still give a str.
        protocol.Timings.__str__ = lambda self: pprint.pformat(self._timings)
    if not getattr(Server.create_application, "keeps_socket", False):
        create_application = Server.create_application

        def keeping_socket(self, socket, scope):
            if scope.get("type") == "websocket":
                scope[SOCKET] = socket
            return create_application(self, socket, scope)

        keeping_socket.keeps_socket = True  # type: ignore[attr-defined]
        Server.create_application = keeping_socket


def _no_form_parsing() -> None:
    """Twisted parses no POSTed form of daphne's requests (`parsePOSTFormSubmission=False` for each)."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest.__init__, "parses_no_form", False):
        return
    init = WebRequest.__init__

    def parsing_no_form(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    parsing_no_form.parses_no_form = True  # type: ignore[attr-defined]
    WebRequest.__init__ = parsing_no_form
