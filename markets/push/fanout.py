"""What the floor pushes, and when: the handlers of the feed's two sources (see markets.push).

New ledger events (any process) -> what they changed is rendered once for the session and sent to its
sockets in this process (`deliver`): quoting and trading as rows (`panels.Delta`: the log's and the
blotter's new rows, the holdings rows that moved, the RFQs touched, with the small panels whole), any
other change as the panels it makes stale (`panels.stale`); new oracle ticks -> prices, values and the
invariants, once. Consumers add the RFQ board (or its rows) per viewer from the shared data, so no
browser costs an extra database read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.db.models import Max, Q
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from ledger import clock, store
from ledger.models import Event
from ledger.postgres import Position, begin, follow
from markets import domain, projections, selectors
from markets.models import Participant, Quote, Session, Trade
from markets.push.feed import feed, nudge
from markets.push.panels import BOARD, EVERYTHING, FLOOR, ROWS, TICK, Delta, delta, shared, stale
from oracle.models import Tick

BATCH = 1000

log = logging.getLogger(__name__)


def render_panels(session_id: str, panels: frozenset[str] = EVERYTHING, *, oob: bool = True) -> dict[str, Any]:
    """The stale shared panels as HTML (out of band for a socket, `oob=False` for the page: `parts` by
    name, `html` all of them in page order), plus the RFQ board's data if it is stale too, read once per
    batch, and the context they were rendered from."""
    context = selectors.floor_context(session_id, panels) | {"oob": oob}
    encode = _ascii if oob else mark_safe  # a page is encoded once, in one piece
    parts = {name: encode(render_to_string(f"{FLOOR}#{name}", context)) for name in shared(panels)}
    board = selectors.board_data(context["session"], context.get("prices")) if BOARD in panels else None
    return {
        "html": mark_safe("".join(parts.values())),
        "parts": parts,
        "board": board,
        "oob": oob,
        "context": context,
        "seq": context["last_seq"],
        "session": context["session"],
        "phase": context["phase"],
        # The stream version every panel shows at least (each was read after the session): where a socket
        # sent this stands, for the rows pushed next. Only a whole floor says it (a tick's push does not).
        "version": context["session"].version if panels >= EVERYTHING else None,
    }


def render_delta(session_id: str, change: Delta, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a batch of quoting and trading changed, as rows: the small stale panels whole (status, pool,
    chart), the new rows of the log and the blotter, the holdings rows that moved, and the touched RFQs'
    data for each viewer's board rows (`render_board_rows`). `events` are the batch's messages."""
    whole = frozenset(shared(change.panels)) - ROWS
    try:
        context = selectors.floor_context(session_id, whole | ({"holdings"} if change.users else frozenset()))
    except Session.DoesNotExist:
        return None
    context["oob"] = True
    session = context["session"]
    html = [render_to_string(f"{FLOOR}#{name}", context) for name in shared(whole)]
    names = selectors.participant_names(session_id)
    rows = [selectors.event_row(e, names) for e in sorted((m["event"] for m in events), key=_seq_of, reverse=True)]
    html.append(render_to_string(f"{FLOOR}#events_added", {"events": rows}))
    if change.trades:
        trades = Trade.objects.filter(id__in=change.trades).select_related("taker", "maker").order_by("-id")
        html.append(render_to_string(f"{FLOOR}#trades_added", {"trades": list(trades)}))
    if change.users:
        moved = [h for h in context["holdings"] if h.user_id in change.users]
        html.append(render_to_string(f"{FLOOR}#holdings_changed", {"holdings": moved, "row_oob": True}))
    board = None
    if BOARD in change.panels:
        touched = list(change.rfqs)
        if change.expired_quotes:
            expired = Quote.objects.filter(id__in=change.expired_quotes).values_list("rfq_id", flat=True)
            touched += sorted(set(expired) - set(touched), reverse=True)
        open_now = {r["id"]: r for r in selectors.board_data(session, context.get("prices"), only=touched)}
        # Oldest first: each new RFQ goes on top of the board, so the newest ends on top, as the page has it.
        board = [(rfq_id, open_now.get(rfq_id), rfq_id in change.new_rfqs) for rfq_id in sorted(touched)]
    return {
        "delta": change,
        "html": _ascii("".join(html)),
        "board_rows": board,
        "oob": True,
        "seq": context["last_seq"],
        "session": session,
        "phase": context["phase"],
    }


def _seq_of(event: dict[str, Any]) -> int:
    return event["seq"]


def _render_if_exists(session_id: str, panels: frozenset[str]) -> dict[str, Any] | None:
    if not Session.objects.filter(id=session_id).exists():
        return None
    return render_panels(session_id, panels)


def _ascii(html: str) -> SafeString:
    """The same HTML with every non-ASCII character as a character reference (→ becomes &#8594;): the
    server encodes each message for each socket, and ASCII text encodes as a plain copy."""
    return mark_safe(html.encode("ascii", "xmlcharrefreplace").decode("ascii"))


def render_board(panels: dict[str, Any], me: Participant | None) -> str:
    """The board for one viewer, from the batch's shared data: no database read per browser. Viewers
    who stand alike to every open RFQ (all watchers; makers with no quote up; traders with no RFQ
    open) share one rendering, and each RFQ is rendered once per way of standing to it, so a push to
    50 participants costs a few renders, not 50 boards."""
    session, phase = panels["session"], panels["phase"]
    stances = tuple(_stance(r, me, phase) for r in panels["board"])
    can_request = bool(me and me.role != Participant.Role.ORGANISER and phase == Session.Status.OPEN)
    key = (can_request, stances)
    boards = panels.setdefault("boards", {})  # the batch is shared by threads: at worst one renders twice
    if key not in boards:
        rows = panels.setdefault("rows", {})
        board = []
        for r, stance in zip(panels["board"], stances, strict=True):
            if stance not in rows:
                rows[stance] = render_to_string(f"{FLOOR}#rfq", {"r": r, "me": me, "session": session, "phase": phase})
            board.append({"html": rows[stance]})
        context = {
            "session": session,
            "phase": phase,
            "board": board,
            "me": me,
            "is_organiser": bool(me and me.role == Participant.Role.ORGANISER),
            "oob": panels.get("oob", True),
        }
        html = render_to_string(f"{FLOOR}#board", context)
        boards[key] = _ascii(html) if context["oob"] else mark_safe(html)
    return boards[key]


def render_board_rows(panels: dict[str, Any], me: Participant | None) -> str:
    """The RFQs a batch touched, as `viewer` stands to them (`render_delta`): a new one goes on top of
    the board, an open one replaces its row, a closed one leaves. Shared like `render_board`."""
    session, phase = panels["session"], panels["phase"]
    touched = panels["board_rows"]
    stances = tuple(_stance(r, me, phase) if r is not None else None for _, r, _ in touched)
    boards, rows = panels.setdefault("boards", {}), panels.setdefault("rows", {})
    if stances not in boards:
        out = []
        for (rfq_id, r, new), stance in zip(touched, stances, strict=True):
            if r is None:
                if not new:
                    out.append(f'<div id="rfq-{rfq_id}" hx-swap-oob="delete"></div>')
                continue
            if stance not in rows:
                context = {"r": r, "me": me, "session": session, "phase": phase, "rfq_oob": not new}
                rows[stance] = render_to_string(f"{FLOOR}#rfq", context)
            out.append(f'<div hx-swap-oob="afterbegin:#rfqs">{rows[stance]}</div>' if new else rows[stance])
        boards[stances] = _ascii("".join(out))
    return boards[stances]


def _stance(r: dict[str, Any], me: Participant | None, phase: str) -> tuple:
    """Everything about the viewer that the `rfq` partial looks at (a watcher stands like anyone who
    neither asked, nor quoted, nor may quote); once trading is over nobody may do anything."""
    if me is None or phase != Session.Status.OPEN:
        return (r["id"], False, (), False)
    return (
        r["id"],
        me.id == r["taker_id"],
        tuple(q["id"] for q in r["quotes"] if q["maker_id"] == me.id),
        me.role == Participant.Role.MAKER and me.id != r["taker_id"],
    )


class Viewer(Protocol):
    """A floor socket of this process as the fan-out sees it (markets.push.consumers.FloorConsumer)."""

    ready: bool  # its first floor is sent: pushes go to it directly
    missed: bool  # a push came while it was not ready: it must read its floor afresh
    version: int | None  # the session's stream version its floor shows (rows apply on it alone); None: any

    async def push(self, panels: dict[str, Any]) -> None: ...


# This process's floor sockets by session, written to directly by the fan-out: one loop over the
# session's sockets, as a bare ASGI broadcast does. Through the channel layer, every socket cost a
# copied message, a task and a wake-up of its own (a third of a push to 500 sockets).
_viewers: defaultdict[str, dict[Viewer, asyncio.AbstractEventLoop]] = defaultdict(dict)


def watch(session_id: str, viewer: Viewer) -> None:
    """From now on `viewer` gets the session's pushes (or, until it is ready, learns that it missed one)."""
    viewer.ready, viewer.missed = False, False
    _viewers[session_id][viewer] = asyncio.get_running_loop()


def unwatch(session_id: str, viewer: Viewer) -> None:
    """No more pushes to `viewer` (whether it was watching or not)."""
    viewers = _viewers.get(session_id)
    if viewers is not None:
        viewers.pop(viewer, None)
        if not viewers:
            del _viewers[session_id]


async def deliver(session_id: str, panels: dict[str, Any]) -> None:
    """Send a rendering to every socket of the session in this process; those still connecting are
    told they missed it. Rows (`render_delta`) go to the sockets whose floor stands where they start;
    a socket already past them gets nothing, one elsewhere the whole floor (rendered once for all)."""
    loop = asyncio.get_running_loop()
    change: Delta | None = panels.get("delta")
    whole: dict[str, Any] | None = None
    for viewer, its_loop in list(_viewers.get(session_id, {}).items()):
        if its_loop is not loop:
            if its_loop.is_closed():  # a socket of an event loop that is gone (tests): nothing to write to
                unwatch(session_id, viewer)
            continue
        if not viewer.ready:
            viewer.missed = True
            continue
        rendering = panels
        if change is not None and viewer.version is not None and viewer.version != change.after:
            if viewer.version >= change.version:
                continue
            if whole is None:
                whole = await feed.run_sync(_render_if_exists, session_id, EVERYTHING)
                if whole is None:
                    return
            rendering = whole
        try:
            await viewer.push(rendering)
        except Exception:  # one broken socket must not keep the push from the others
            log.exception("push to a floor socket of %s failed", session_id)


# ---------------------------------------------------------------- feed sources


def _newer(queryset, key: str, position: Position):
    """The rows of `queryset` past `position` (above its last key, or in its gaps), by key."""
    after = Q(**{f"{key}__gt": position.last})
    if position.gaps:
        after |= Q(**{f"{key}__in": list(position.gaps)})
    return queryset.filter(after).order_by(key)


def _start(queryset, key: str) -> Position:
    """Past the newest row of `queryset` by `key`, with the gaps a transaction in flight may still fill."""
    return begin(
        lambda: queryset.aggregate(m=Max(key))["m"],
        lambda k: list(queryset.filter(**{f"{key}__gt": k}).values_list(key, flat=True)),
    )


def _events_start() -> Position:
    return _start(Event.objects.all(), "seq")


def _events_poll(position: Position) -> tuple[list[dict[str, Any]], Position]:
    events, position = follow(lambda p: list(_newer(Event.objects.all(), "seq", p)[:BATCH]), _seq, position)
    return [event_message(e) for e in events], position


def _seq(event: Event) -> int:
    return event.seq


def event_message(event: Event) -> dict[str, Any]:
    """An event as the JSON stream sends it: the one serialised shape (`selectors.event_json`, as the API's
    events pages give it) inside a message of type "event"."""
    return {"type": "event", "event": selectors.event_json(event)}


def holdings_json(session_id: str) -> dict[str, Any]:
    session = Session.objects.get(id=session_id)
    matrix = projections.holdings_matrix(session_id)
    return {
        "type": "holdings",
        "session_id": session_id,
        "seq": session.last_seq,
        "status": session.phase(clock.now()),
        "legs": session.legs,
        "holdings": {
            u: {leg: domain.qty_str(x) for leg, x in zip(session.legs, row, strict=True)} for u, row in matrix.items()
        },
    }


def _ticks_start() -> Position:
    return _start(Tick.objects.all(), "id")


def _ticks_poll(position: Position) -> tuple[list[dict[str, Any]], Position]:
    def read(p: Position) -> list:
        fields = ("id", "session_id", "symbol", "price", "at")
        return list(_newer(Tick.objects.all(), "id", p).values_list(*fields)[: BATCH * 10])

    rows, position = follow(read, _first, position)
    ticks = [
        {"type": "tick", "id": i, "session_id": sid, "symbol": sym, "price": domain.price_str(p), "at": at.isoformat()}
        for i, sid, sym, p, at in rows
    ]
    return ticks, position


def _first(row: tuple) -> int:
    return row[0]


async def _fan_out(pushes: dict[str, frozenset[str]], batches: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Render what changed in each session once and send it to its browsers: its events' rows where
    they say so (`panels.delta`), else its stale panels (session id -> panels; `batches`: its events)."""
    for sid, stale_panels in sorted(pushes.items()):
        if sid not in _viewers:
            continue  # nobody in this process shows it
        batch = (batches or {}).get(sid, [])
        change = delta(m["event"] for m in batch) if batch else None
        if change is not None:
            panels = await feed.run_sync(render_delta, sid, change, batch)
        else:
            panels = await feed.run_sync(_render_if_exists, sid, stale_panels)
        if panels is not None:
            await deliver(sid, panels)


def json_group_name(session_id: str) -> str:
    return f"json.{session_id}"


async def _on_events(events: list[dict[str, Any]]) -> None:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in events:
        sid = domain.session_of_stream(message["event"]["stream"])
        if sid is not None:
            by_session[sid].append(message)
    await _fan_out({sid: stale(m["event"]["type"] for m in batch) for sid, batch in by_session.items()}, by_session)
    layer = get_channel_layer()
    for sid, batch in by_session.items():
        holdings = await feed.run_sync(holdings_json, sid)
        await layer.group_send(json_group_name(sid), {"type": "json.batch", "items": [*batch, holdings]})


async def _on_ticks(ticks: list[dict[str, Any]]) -> None:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tick in ticks:
        by_session[tick["session_id"]].append(tick)
    await _fan_out(dict.fromkeys(by_session, stale([TICK])))
    layer = get_channel_layer()
    for sid, batch in by_session.items():
        await layer.group_send(json_group_name(sid), {"type": "json.batch", "items": batch})


SOURCES = (("events", _events_start, _events_poll, _on_events), ("ticks", _ticks_start, _ticks_poll, _on_ticks))


async def start() -> None:
    """The one place this process's follower starts (every socket awaits it before its first read; once
    running, it returns at once): register the two sources, listen to this process's commits, run on the
    current loop, and return when the follower holds its starting positions (`Feed.ensure_running`)."""
    for name, first, poll, handler in SOURCES:
        if name not in feed.sources:
            feed.register(name, first, poll, handler)
    store.after_commit(nudge)
    await feed.ensure_running()
