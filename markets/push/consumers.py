"""WebSocket consumers. The browser's floor gets HTML fragments (hx-swap-oob); thin on purpose:
rendering lives in markets.push.fanout, following the log in markets.push.feed.

A socket that cannot be served is accepted and then closed with a code a client can tell apart (a close
before the handshake completes reaches every client as the same HTTP 403):

    4400  bad request: `?after=` is not a whole number (an empty one too)
    4401  not signed in / no valid API token (a socket without an Origin header needs a token); also an
          open socket whose token was revoked, whose account was deactivated or whose sign-in ended
          (markets.push.credentials, within seconds)
    4403  not allowed: the session is visible to its participants only, or the floor without a browser
    4404  no such session, or no such WebSocket path
    1013  try again later: the live feed cannot read the database yet (it retries by itself)
    1009  a message from the client over daphne's limit, 1 MiB (sessionsite/wsserver.py)

The JSON stream sends `{"type": "error", "code": ..., "message": ...}` just before closing. A socket
from a page of another site is refused at the handshake itself (HTTP 403, see sessionsite/origin.py).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import DatabaseSyncToAsync, database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from ledger.models import Event
from markets import access, sql, tokens
from markets.models import Participant, Session, stream_name
from markets.push import credentials, fanout, frames, presence, render, sealing, snapshot
from markets.push.credentials import Credentials
from markets.selectors import sealed
from markets.selectors.monitor import can_monitor

log = logging.getLogger(__name__)

BAD_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, TRY_AGAIN = 4400, 4401, 4403, 4404, 1013
CLOSE_CODES = {
    BAD_REQUEST: "bad_request",
    UNAUTHENTICATED: "unauthenticated",
    FORBIDDEN: "forbidden",
    NOT_FOUND: "not_found",
    TRY_AGAIN: "try_again",
}
IGNORED_LOG_SECONDS = 60  # a stream's ignored client frames: the first logged, then one line a minute
NOT_FOLLOWING = "the live feed cannot read the database yet: try again in a few seconds"


async def refuse(consumer, code: int, message: str, *, tell: bool = False, level: int = logging.INFO) -> None:
    """Accept, say why (JSON clients), close with `code`: one log line, no traceback."""
    log.log(level, "websocket %s refused (%s): %s", consumer.scope.get("path"), code, message)
    await consumer.accept()
    if tell:
        await consumer.send_json({"type": "error", "code": CLOSE_CODES[code], "message": message})
    await consumer.close(code=code)


async def withdraw(consumer, why: str, *, tell: bool = False) -> None:
    """Close an open socket whose credentials lapsed (`markets.push.credentials`) with 4401, saying why."""
    log.info("websocket %s closed (%s): %s", consumer.scope.get("path"), UNAUTHENTICATED, why)
    if tell:
        await consumer.send_json({"type": "error", "code": CLOSE_CODES[UNAUTHENTICATED], "message": why})
    await consumer.close(code=UNAUTHENTICATED)


# A connect's reads (`FloorConsumer._arrival`) run on threads of their own, each with its connection, not
# in the queue of Channels' one database thread: on PostgreSQL, where each read is a round trip, 500
# sockets connecting at once (a restart) wait for their reads side by side. The floor they are sent is
# still rendered once per position (`snapshot.floor`).
ARRIVAL_THREADS = 4
_arrivals = ThreadPoolExecutor(ARRIVAL_THREADS, thread_name_prefix="ws-arrival")


def _on_arrival_thread(fn):
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_arrivals)


def _session(session_id: str) -> Session | None:
    return sql.get_by_pk(Session, session_id)


async def _following() -> bool:
    """Whether this process's follower holds its starting positions (started now if need be): False when
    the database did not answer within `feed.START_SECONDS` (the socket is told to try again, 1013)."""
    try:
        await fanout.start()
    except TimeoutError:
        return False
    return True


class _DirectDispatch:
    """Channels sweeps stale database connections before every handler, by a hop to its one shared
    sync thread: with 500 sockets on a session that is 500 hops in a row for every push. These
    consumers touch the database only through `database_sync_to_async`, which sweeps in its own
    worker thread, so the handlers are called directly (Channels' own dispatch with STOCK_SERVER=true)."""

    async def dispatch(self, message: dict) -> None:
        if settings.STOCK_SERVER:
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class FloorConsumer(_DirectDispatch, AsyncWebsocketConsumer):
    """`/ws/sessions/<id>/`: only signed-in users; on (re)connect the whole floor is sent (unless the
    page shows the current position), so a browser that dropped misses nothing; afterwards every change
    arrives as out-of-band fragments. Every accepted socket counts in its user's presence
    (markets.push.presence).

    `?monitor=1` is the organiser's monitor page (organiser and staff only): it is sent no fragments,
    only the word "refresh" when the floor changed and "presence" when someone's socket came or went
    (in this process; the page also refreshes by itself, for the other processes' sockets)."""

    monitor = False
    present = False
    ready = False  # see fanout.watch
    missed = False
    version: int | None = -1  # the stream version this floor shows (fanout.deliver); -1 not known, None: a monitor

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if self.scope.get("origin") is None:
            await refuse(self, FORBIDDEN, "the floor is for browsers; programs use the JSON stream with a token")
            return
        if self.user is None:
            await refuse(self, UNAUTHENTICATED, "sign in first")
            return
        self.monitor = query.get("monitor", [""])[0] == "1"
        if self.monitor:
            self.version = None  # told to refresh whatever changed
        # Watching before the floor is read, and read once the follower stands somewhere: a push
        # rendered meanwhile marks it missed (`fanout.deliver`), a later commit is pushed.
        fanout.watch(self.session_id, self)
        try:
            if not await _following():
                fanout.unwatch(self.session_id, self)
                await refuse(self, TRY_AGAIN, NOT_FOLLOWING, level=logging.WARNING)
                return
            refusal, self.me, panels = await _on_arrival_thread(self._arrival)(query.get("at", [""])[0])
            if refusal is not None:
                fanout.unwatch(self.session_id, self)
                await refuse(self, *refusal)
                return
            if self.monitor:
                await self.channel_layer.group_add(presence.monitor_group(self.session_id), self.channel_name)
            await self.accept()
            await self._first_floor(panels)
        except BaseException:
            fanout.unwatch(self.session_id, self)
            raise
        self.present = True  # counted after the floor is sent: the viewer waits for no presence write
        credentials.hold(self, self.credentials)
        await presence.arrive(self.channel_layer, self.session_id, self.user.pk)

    async def _first_floor(self, panels: dict | None) -> None:
        """Send the floor read on arrival, then take pushes directly. A push that came while the floor
        was read or sent makes what was read older than what the others see: read it again (a monitor
        is told to refresh)."""
        while True:
            if self.missed:
                self.missed = False
                if self.monitor:
                    await self.send(text_data="refresh")
                else:
                    panels = await database_sync_to_async(snapshot.floor_of)(self.session_id)
            if panels is not None:
                await self.push(panels)
                panels = None
            if not self.missed:
                self.ready = True
                return

    def _arrival(self, shown: str) -> tuple[tuple[int, str] | None, Participant | None, dict | None]:
        """Everything a connect reads, in one trip to a connect thread: who the session cookie
        names (`sessionsite.wsauth`), may they see (or monitor) the session, who they are in it, and
        the floor to send (none to a monitor, and none when the page just rendered shows the current
        position: sending it again would only overwrite what the viewer is typing). The floor is the
        one rendered at this position for everyone (`snapshot`): 500 sockets reconnecting at once cost
        one rendering."""
        if not self.user.is_authenticated:
            return (UNAUTHENTICATED, "sign in first"), None, None
        self.credentials = credentials.signed_in(self.user, self.scope.get("session"))
        session = _session(self.session_id)
        if session is None:
            return (NOT_FOUND, f"no session {self.session_id}"), None, None
        me = sql.participant_of(self.session_id, self.user.pk)
        if not access.can_view(session, self.user, participant=me):
            return (FORBIDDEN, f"session {self.session_id} is visible to its participants only"), None, None
        if self.monitor and not can_monitor(session, self.user):
            return (FORBIDDEN, f"the monitor of {self.session_id} is for its organiser"), None, None
        if self.monitor:
            return None, me, None
        name = snapshot.key(session, oob=True)
        if shown and shown == snapshot.position(name):
            self.version = session.version  # what the page shows, read at this very position
            return None, me, None
        return None, me, snapshot.floor(session, oob=True, name=name)

    async def disconnect(self, code: int) -> None:
        credentials.release(self)
        fanout.unwatch(self.session_id, self)  # a no-op for a socket refused before it watched
        if self.monitor:
            await self.channel_layer.group_discard(presence.monitor_group(self.session_id), self.channel_name)
        if self.present:
            self.present = False
            await presence.leave(self.channel_layer, self.session_id, self.user.pk)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The floor sends nothing meaningful: actions go through CSRF-checked hx-post."""

    async def withdraw(self, why: str) -> None:
        await withdraw(self, why)

    async def push(self, panels: dict) -> None:
        """A rendering of the floor's panels (the whole floor, those a change made stale, or the rows a
        batch changed: `render.render_delta`), with this viewer's RFQ board, or its touched rows, when
        they are among them; a monitor is only told to refresh."""
        if self.monitor:
            await self.send(text_data="refresh")
            return
        board = None
        change = panels.get("delta")
        if change is not None:
            self.version = change.version
            if panels["board_rows"]:
                board = render.render_board_rows(panels, self.me)
        else:
            if panels.get("version") is not None:
                self.version = panels["version"]
            if panels.get("board") is not None:
                # A watcher may join while connected, but only while the session is still "created":
                # once it is open nobody joins, so watchers of an open session cost no query per push.
                if self.me is None and panels["session"].status == Session.Status.CREATED:
                    self.me = await self._participant()
                board = render.render_board(panels, self.me)
        text = render.message(panels, board)
        if panels.get("kept") or not frames.send_shared(self.scope, text, panels.setdefault("frames", {})):
            await self.send(text_data=text)  # a first floor, kept for later viewers: no frames kept with it
        mine = render.render_mine(panels, self.me)  # a holder's own position: a message of its own
        if mine is not None:
            await self.send(text_data=mine)
        orders = render.render_orders(panels, self.me)  # a batch session: their own orders, sealed to others
        if orders is not None:
            await self.send(text_data=orders)

    async def monitor_presence(self, message: dict) -> None:
        await self.send(text_data="presence")

    async def _participant(self) -> Participant | None:
        return await database_sync_to_async(
            Participant.objects.filter(session_id=self.session_id, user=self.user).first
        )()


class StreamConsumer(_DirectDispatch, AsyncJsonWebsocketConsumer):
    """`/ws/sessions/<id>` for programs: a JSON stream of events, holdings, ticks and status.

    Authenticated by the session cookie or an API token (`Authorization: Bearer ...` header, or
    `?token=` for clients that cannot set headers). `?after=SEQ` resumes: every event of the session
    after SEQ is sent first, then live ones; each event carries its `seq`, so a client that reconnects
    with the last seq it saw misses nothing and sees nothing twice.
    """

    ignored = 0  # frames from the client ignored since the last log line about them
    ignored_logged_at: float | None = None

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        user, self.credentials = await database_sync_to_async(self._authenticate)(query)
        if user is None:
            await refuse(self, UNAUTHENTICATED, "send 'Authorization: Bearer <token>' (or ?token=)", tell=True)
            return
        session = await database_sync_to_async(_session)(self.session_id)
        if session is None:
            await refuse(self, NOT_FOUND, f"no session {self.session_id}", tell=True)
            return
        if not await database_sync_to_async(access.can_view)(session, user):
            await refuse(self, FORBIDDEN, f"session {self.session_id} is visible to its participants only", tell=True)
            return
        self.seal = await database_sync_to_async(sealed.Seal)(session, user)  # whose orders this socket reads whole
        after = query.get("after", ["0"])[0]
        if not after.isascii() or not after.isdigit() or len(after) > 19:
            await refuse(self, BAD_REQUEST, "after must be the whole number of the last seq you saw", tell=True)
            return
        self.last_seq = int(after)
        self.group = fanout.json_group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)  # join first: no gap
        if not await _following():  # the backlog is read once the follower stands somewhere (no gap)
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await refuse(self, TRY_AGAIN, NOT_FOLLOWING, tell=True, level=logging.WARNING)
            return
        await self.accept()
        credentials.hold(self, self.credentials)
        backlog = await database_sync_to_async(self._backlog)()
        for item in backlog:
            await self._send_item(item)
        await self.send_json(await database_sync_to_async(fanout.holdings_json)(self.session_id))

    def _backlog(self) -> list[dict]:
        events = Event.objects.filter(stream=stream_name(self.session_id), seq__gt=self.last_seq).order_by("seq")
        return sealing.seal_items(self.session_id, self.seal, [fanout.event_message(e) for e in events.iterator(1000)])

    def _authenticate(self, query: dict[str, list[str]]) -> tuple[object | None, Credentials | None]:
        """The session cookie's user (browser pages of this site only), else the API token's user, with
        what the socket is held to (sync: the cookie's user is read here, see sessionsite.wsauth)."""
        user = self.scope.get("user")
        if self.scope.get("origin") is not None and user is not None and user.is_authenticated:
            return user, credentials.signed_in(user, self.scope.get("session"))
        raw = None
        for name, value in self.scope.get("headers", []):
            if name == b"authorization" and value.lower().startswith(b"bearer "):
                raw = value[7:].decode("latin-1").strip()
        token = tokens.authenticate_token(raw or query.get("token", [None])[0])
        if token is None:
            return None, None
        return token.user, Credentials(token.user_id, token_id=token.pk)

    async def disconnect(self, code: int) -> None:
        credentials.release(self)
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.ignored:
            self._log_ignored("before it closed")

    async def withdraw(self, why: str) -> None:
        await withdraw(self, why, tell=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Programs act through the HTTP API (idempotent, permission-checked); the stream only speaks.
        Whatever arrives, JSON or not, gets the same answer and the stream stays open. The first such
        frame is logged, then at most one line a minute per socket, with a count."""
        self.ignored += 1
        now = time.monotonic()
        if self.ignored_logged_at is None:
            log.warning(
                "websocket %s: a frame from the client was ignored (the stream is read-only; more are counted, "
                "one line a minute)",
                self.scope.get("path"),
            )
            self.ignored, self.ignored_logged_at = 0, now
        elif now - self.ignored_logged_at >= IGNORED_LOG_SECONDS:
            self._log_ignored("since the last line")
            self.ignored_logged_at = now
        await self.send_json({"type": "error", "code": "read_only", "message": "use the HTTP API to act"})

    def _log_ignored(self, when: str) -> None:
        log.warning(
            "websocket %s: %d more frames from the client were ignored %s (the stream is read-only)",
            self.scope.get("path"),
            self.ignored,
            when,
        )
        self.ignored = 0

    async def json_batch(self, message: dict) -> None:
        items = message["items"]
        if sealing.needs_sealing(items, self.seal):  # the group's messages are everyone's: sealed per socket
            items = await database_sync_to_async(sealing.seal_items)(self.session_id, self.seal, items)
        for item in items:
            await self._send_item(item)

    async def _send_item(self, item: dict) -> None:
        if item["type"] == "event":
            seq = item["event"]["seq"]
            if seq <= self.last_seq:
                return  # already sent from the backlog
            self.last_seq = seq
        await self.send_json(item)


class NoRoute(AsyncJsonWebsocketConsumer):
    """Any other /ws/ path (a malformed session id, a typo): 4404 and one log line, not a server error."""

    async def connect(self) -> None:
        message = "no such WebSocket endpoint: use /ws/sessions/<id>/ or /ws/sessions/<id>"
        await refuse(self, NOT_FOUND, message, tell=True, level=logging.WARNING)
