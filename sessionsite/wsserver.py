"""Changes to the servers underneath daphne (autobahn for WebSockets, Twisted for HTTP), applied when the
ASGI app loads.

Two speed patches (`patch`, not applied with STOCK_SERVER=true):

Every WebSocket connect makes autobahn format its whole configuration with `pprint.pformat` for a debug
line, before it knows whether debug lines are logged (they are not): in a reconnect storm of 500
sockets that formatting was 40% of the event loop's time. The patch hands the debug line a value that
formats itself only when the line is written, so a server logging at debug level prints the same.

A push goes to hundreds of sockets with the same text (every watcher of a floor gets the same message):
daphne puts each socket's protocol in its scope (`markets.push.frames.SOCKET`), so a push frames a
text once and writes the same frame to each (`markets.push.frames.send_shared`).

Two changes of behaviour, applied in both modes (stock daphne cannot do either):

Twisted's HTTP request parses every POSTed form body into `request.args` before daphne sees the request,
and answers a multipart body it cannot parse (a bad boundary) with a bare, empty 400 and a closed
connection: no JSON error under /api/, no page. Daphne never reads `args` (it hands the body to Django),
so that parsing is switched off (`parse_no_forms`): Django reads the body, once, and answers as for any
other bad body.

`refuse_too_big`: a
client's message over daphne's limit (`--websocket-max-message-size`, 1 MiB by default; a frame over
`--websocket-max-frame-size` likewise) is answered with a JSON error and a close with 1009 (message too
big). Left alone, autobahn drops the TCP connection without a close frame (its `failByDrop`), which a
client reads as 1006, and an application cannot close with 1009 itself (autobahn's `sendClose` takes
1000 and 3000-4999 only).
"""

from __future__ import annotations

import json
import logging
import pprint
from typing import Any

log = logging.getLogger(__name__)

MESSAGE_TOO_BIG = 1009


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


def too_big_error(size: int, limit: int) -> dict[str, str]:
    return {
        "type": "error",
        "code": "message_too_big",
        "message": f"a message to the server may have at most {limit} bytes; this one has {size} or more",
    }


def refuse_too_big() -> bool:
    """Make daphne's WebSocket protocol answer a message over its limit with the JSON error, then a close
    handshake with 1009 (autobahn's own hook for it, `_max_message_size_exceeded`, with `failByDrop` off
    for that connection). False, with a warning, when this autobahn has no such hook (an upgrade renamed
    it): a too-big message then drops the connection as autobahn does."""
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne.ws_protocol import WebSocketProtocol

    original = getattr(AutobahnProtocol, "_max_message_size_exceeded", None)
    if original is None:
        log.warning("autobahn has no _max_message_size_exceeded: a too-big message drops the socket (no 1009)")
        return False
    if getattr(WebSocketProtocol._max_message_size_exceeded, "refuses_too_big", False):
        return True

    def refusing(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        log.warning(
            "websocket %s: a message of %s bytes or more refused (%s; at most %s)",
            getattr(getattr(self, "request", None), "path", "?"),
            msg_size,
            MESSAGE_TOO_BIG,
            max_msg_size,
        )
        if self.state == self.STATE_OPEN:
            self.sendMessage(json.dumps(too_big_error(msg_size, max_msg_size)).encode())
        self.failByDrop = False  # a close handshake with 1009, not a dropped connection
        original(self, msg_size, max_msg_size, reason)

    refusing.refuses_too_big = True  # type: ignore[attr-defined]
    WebSocketProtocol._max_message_size_exceeded = refusing
    return True


def parse_no_forms() -> None:
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
