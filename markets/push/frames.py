"""One frame for many sockets: a push sends the same text to hundreds of sockets (every watcher of a
floor gets the same message), so it is framed once and the same frame written to each (autobahn's
prepared messages, made for broadcasts), instead of going through Channels and daphne's reply path,
which encodes and frames it again for every socket. daphne puts each WebSocket's protocol in its scope
under `SOCKET` (sessionsite/wsserver.py patches it in when the ASGI app loads).

The frame goes straight to the socket's transport when nothing else is queued on it and it is not
compressed, as autobahn's `sendData` does itself; autobahn would first format a debug line for every
write (names and values highlighted for its log, even when nothing is logged), which cost more than the
write at 500 sockets a push. And when the transport has nothing buffered either, the frame is handed to
the kernel at once (`_write`): Twisted would buffer it, ask the event loop to watch the socket, write
it on the loop's next turn and stop watching, three system calls and two callbacks a socket where one
`send` does; what the kernel does not take then goes through Twisted as before.

With STOCK_SERVER=true daphne is not patched, no scope holds its socket, and every push goes through
Channels' send (`send_shared` returns False).
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
        if socket.send_queue or socket.logOctets or (socket._perMessageCompress and not frame.doNotCompress):
            socket.sendPreparedMessage(frame)  # queued, logged or compressed: autobahn's own path
        else:
            _write(socket.transport, frame.payloadHybi)
            socket.trafficStats.outgoingOctetsWireLevel += len(frame.payloadHybi)
    return True


def _write(transport: Any, data: bytes) -> None:
    """Write `data` to a Twisted TCP transport in order: straight to its socket when nothing waits in the
    transport's buffers (and it is plain TCP, open, its producer, daphne's HTTP channel, not paused for a
    full buffer), the rest (or all of it) through `transport.write`, which also pauses that producer when
    the buffer fills and meets a broken connection the way Twisted reports it."""
    idle = (
        getattr(transport, "_tempDataBuffer", True) == []
        and getattr(transport, "dataBuffer", True) == b""
        and transport.connected
        and not transport.disconnecting
        and not getattr(transport, "_writeDisconnected", True)
        and not getattr(transport, "TLS", False)
        and (transport.producer is None or (transport.streamingProducer and not transport.producerPaused))
    )
    sent = 0
    if idle:
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted's write finds the broken connection and closes it as it always does
    if sent < len(data):
        transport.write(data[sent:] if sent else data)
