"""WebSocket consumers. The browser's floor gets HTML fragments (hx-swap-oob); thin on purpose:
rendering lives in markets.live, following the log in ledger.feed."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from ledger.feed import feed
from markets import live
from markets.models import Participant, Session


class FloorConsumer(AsyncWebsocketConsumer):
    """`/ws/sessions/<id>/`: only signed-in users; on (re)connect the whole floor is sent, so a
    browser that dropped misses nothing; afterwards every change arrives as out-of-band fragments."""

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(Session.objects.filter(id=self.session_id).exists)():
            await self.close(code=4404)
            return
        self.group = live.group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.me = await self._participant()
        live.register()
        feed.ensure_running()
        panels = await database_sync_to_async(live.render_panels)(self.session_id)
        await self._send_panels(panels)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The floor sends nothing meaningful: actions go through CSRF-checked hx-post."""

    async def floor_update(self, message: dict) -> None:
        await self._send_panels(message["panels"])

    async def _send_panels(self, panels: dict) -> None:
        html = panels["html"]
        if panels.get("board") is not None:
            if self.me is None:  # a watcher may join while connected (session still created)
                self.me = await self._participant()
            html += live.render_board(panels, self.me)
        await self.send(text_data=html)

    async def _participant(self) -> Participant | None:
        return await database_sync_to_async(
            Participant.objects.filter(session_id=self.session_id, user=self.user).first
        )()
