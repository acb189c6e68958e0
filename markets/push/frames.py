"""One frame for many sockets: a push sends the same text to hundreds of sockets (every watcher of a
floor gets the same message), so it is framed once and the same frame written to each (autobahn's
prepared messages, made for broadcasts), instead of going through Channels and daphne's reply path,
which encodes and frames it again for every socket. daphne puts each WebSocket's protocol in its scope
under `SOCKET` (sessionsite/wsserver.py patches it in when the ASGI app loads).
"""

from __future__ import annotations

from typing import Any

SOCKET = "sessionsite.websocket"  # the scope key of a WebSocket's daphne protocol


def send_shared(scope: dict[str, Any], text: str, frames: dict[str, Any]) -> bool:
    """Write `text` to the scope's socket as one text message framed once for everyone who is sent the
    same `text` (`frames` holds the frames of one push); False when the scope has no daphne socket
    (Channels' test communicator): send it the usual way then. A socket that is not open gets nothing,
    as daphne's own reply path does for a connection that has gone."""
    socket = scope.get(SOCKET)
    if socket is None:
        return False
    if socket.state == socket.STATE_OPEN:
        frame = frames.get(text)
        if frame is None:
            frame = frames[text] = socket.factory.prepareMessage(text.encode("utf-8"))
        socket.sendPreparedMessage(frame)
    return True
