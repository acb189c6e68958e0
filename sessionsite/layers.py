"""The channel layer: Channels' in-memory layer (each web process follows the database itself, see
markets/push/feed.py, so nothing has to cross processes), with its expiry sweep throttled.

The stock layer sweeps every channel and every group member on every `receive`: a push to 500 sockets
of one session made 500 sweeps of 500 channels (most of the push's time). Sweeping at most once a
second keeps the same expiry rules (messages unread after `expiry` seconds are dropped) at a cost
that no longer grows with the square of the number of sockets.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer


class SweptInMemoryChannelLayer(InMemoryChannelLayer):
    sweep_interval = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._swept = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept < self.sweep_interval:
            return
        self._swept = now
        super()._clean_expired()
