"""STOCK_SERVER=true serves with stock daphne and Channels: each of the reaches into their internals is off
(the pooled request handler, the frames written past Channels, the autobahn and daphne speed patches, the
direct dispatch, the swept channel layer), and only the 1009 close for a too-big message stays (stock
daphne cannot send it). The live tests run in both modes (.ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import channels.consumer
import pytest

from markets.push.consumers import FloorConsumer
from sessionsite.testing import BASE_DIR

# What a web process loaded: the ASGI app as daphne imports it, then what it changed or chose.
INSPECT = """
import json, pprint
from sessionsite.asgi import application
from autobahn.websocket import protocol
from channels.layers import get_channel_layer
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from markets.push import frames

http = application.application_mapping["http"].application
print(json.dumps({
    "http": f"{type(http).__module__}.{type(http).__qualname__}",
    "autobahn_pformat": f"{protocol.pformat.__module__}.{protocol.pformat.__qualname__}",
    "autobahn_timings_str": protocol.Timings.__str__.__module__,
    "daphne_create_application": Server.create_application.__module__,
    "socket_in_scope": getattr(Server.create_application, "keeps_socket", False),
    "too_big_closes_1009": getattr(WebSocketProtocol._max_message_size_exceeded, "refuses_too_big", False),
    "layer": f"{type(get_channel_layer()).__module__}.{type(get_channel_layer()).__qualname__}",
    "frames_sent_past_channels": frames.send_shared({}, "text", {}),
}))
"""


def loaded(stock: str) -> dict:
    env = dict(os.environ, STOCK_SERVER=stock)  # set either way: a .env file may say otherwise
    done = subprocess.run(
        [sys.executable, "-c", INSPECT], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_stock_server_turns_every_reach_into_daphne_autobahn_and_channels_off():
    patched, stock = loaded("false"), loaded("true")
    assert patched == {
        "http": "sessionsite.handler.PooledASGIHandler",
        "autobahn_pformat": "sessionsite.wsserver.LazyFormat",
        "autobahn_timings_str": "sessionsite.wsserver",
        "daphne_create_application": "sessionsite.wsserver",
        "socket_in_scope": True,
        "too_big_closes_1009": True,
        "layer": "sessionsite.layers.SweptInMemoryChannelLayer",
        "frames_sent_past_channels": False,  # a scope without daphne's socket (as in stock mode) is sent as usual
    }
    assert stock == {
        "http": "django.core.handlers.asgi.ASGIHandler",
        "autobahn_pformat": "pprint.pformat",
        "autobahn_timings_str": "autobahn.websocket.protocol",
        "daphne_create_application": "daphne.server",
        "socket_in_scope": False,  # so no push is framed once and written past Channels (markets/push/frames.py)
        "too_big_closes_1009": True,  # the one change kept: stock daphne drops the connection instead
        "layer": "channels.layers.InMemoryChannelLayer",
        "frames_sent_past_channels": False,
    }


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_stock_server_must_be_true_or_false(value):
    env = dict(os.environ, STOCK_SERVER=value)
    code = "import django; django.setup()"
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and f"STOCK_SERVER={value!r} is not a boolean" in done.stderr


async def test_stock_server_dispatches_through_channels_own_dispatch(settings, monkeypatch):
    """Channels closes stale database connections before each handler (a hop to its database thread); the
    consumers skip that hop unless STOCK_SERVER is true."""
    sweeps: list[int] = []

    async def sweep() -> None:
        sweeps.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", sweep)
    consumer = FloorConsumer()
    for stock, expected in ((False, 0), (True, 1)):
        settings.STOCK_SERVER = stock
        sweeps.clear()
        await consumer.dispatch({"type": "websocket.receive", "text": "anything"})
        assert len(sweeps) == expected, stock
