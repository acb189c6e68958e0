"""The push benchmark's machine limit: a bare ASGI broadcast on daphne, no Django, no channel layer.

Run as `daphne bench.echo_asgi:application`. Every WebSocket is greeted with `seq:0|` (padded to N bytes
with `?greet=N`: the reconnect storm's limit, a first message the size of a whole floor); a client that
sends `broadcast:<seq>:<bytes>` makes the server send `seq:<seq>|` padded to <bytes> to every other
client, in one loop, as fast as daphne can write them. With the same clients and message size as the
floor's pushes, it shows what fanning one message out costs on this machine before any of our work.
"""

from __future__ import annotations

clients: dict[int, object] = {}


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    me = id(send)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
            greet = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode().split("&") if "=" in p)
            await send({"type": "websocket.send", "text": "seq:0|".ljust(int(greet.get("greet", 0)), "x")})
            clients[me] = send
        elif kind == "websocket.receive":
            text = message.get("text") or ""
            if text.startswith("broadcast:"):
                _, seq, size = text.split(":")
                head = f"seq:{seq}|"
                payload = head + "x" * max(0, int(size) - len(head))
                for other, their_send in list(clients.items()):
                    if other != me:
                        await their_send({"type": "websocket.send", "text": payload})
        elif kind == "websocket.disconnect":
            clients.pop(me, None)
            return
