"""What a push carries: the floor's panels rendered once per batch (or whole, for a page or a socket's
first floor), the rows a batch of quoting and trading changed (`render_delta`, see `panels.Delta`), and
each viewer's RFQ board (or its touched rows) from the batch's shared data, rendered once per way of
standing to it. `fanout` decides when and to whom.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from markets import domain, floor_sql, selectors
from markets.models import Participant, Quote, Session
from markets.push.panels import BOARD, EVERYTHING, FLOOR, ORDERS, ROWS, Delta, shared
from markets.selectors import batch_floor, margin_floor


def render_panels(session_id: str, panels: frozenset[str] = EVERYTHING, *, oob: bool = True) -> dict[str, Any]:
    """The stale shared panels as HTML (out of band for a socket, `oob=False` for the page: `parts` by
    name, `html` all of them in page order), plus the RFQ board's data if it is stale too, read once per
    batch, and the context they were rendered from."""
    context = selectors.floor_context(session_id, panels) | {"oob": oob}
    encode = _ascii if oob else mark_safe  # a page is encoded once, in one piece
    names = shared(panels)
    if "fixing" in names and not panels >= EVERYTHING and not context["fixing"].live:
        names.remove("fixing")  # a tick moves the fixing's progress only while its window runs
    parts = {name: encode(render_to_string(f"{FLOOR}#{name}", context)) for name in names}
    board = (
        selectors.board_data(context["session"], context.get("prices"), parties=context["parties"])
        if BOARD in panels
        else None
    )
    previews = _previews(context, board)
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
        "holdings": context.get("holdings"),  # each holder's own position comes from them (`render_mine`)
        "orders": _orders(context["session"], panels),
        "previews": previews,
    }


def _previews(context: dict[str, Any], board: list[dict[str, Any]] | None) -> dict | None:
    """A shorting session's quote previews (what accepting would do to the taker's margin), by taker, for
    the board this rendering carries, or when it judged the holdings (a tick, a trade, a whole floor): read
    with the whole board when it has none, so that each taker's previews follow the prices (`render_mine`
    sends them)."""
    margin, session = context.get("margin"), context["session"]
    if board is None:
        if margin is None:
            return None
        board = selectors.board_data(session, context.get("prices"), parties=context["parties"])
    # A board rendered whole carries its previews even when this rendering did not judge the holdings (a
    # quoting batch sent whole to a floor that stands elsewhere): without them its preview rows would vanish.
    margin_floor.board_previews(session, board, margin)
    return margin_floor.by_taker(board)


def _orders(session: Session, panels: frozenset[str], users: frozenset[int] | None = None) -> dict | None:
    """Every holder's own part of a batch session's floor (or those `users`'), read once for the
    rendering when their order panels are stale (`render_orders` picks each viewer's)."""
    if ORDERS not in panels or not session.trades_by_batch:
        return None
    return batch_floor.holders_part(session, users)


def render_delta(session_id: str, change: Delta, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a batch of quoting and trading changed, as rows: the small stale panels whole (the status,
    and the pool after a trade), the new rows of the log and the blotter, the holdings rows that moved,
    and the touched RFQs' data for each viewer's board rows (`render_board_rows`). `events` are the
    batch's messages."""
    whole = frozenset(shared(change.panels)) - ROWS
    try:
        context = selectors.floor_context(session_id, whole | ({"holdings"} if change.users else frozenset()))
    except Session.DoesNotExist:
        return None
    context["oob"] = True
    session = context["session"]
    html = [render_to_string(f"{FLOOR}#{name}", context) for name in shared(whole)]
    parties = context["parties"]  # names for the log's rows, parties for the blotter's and the board's
    names = parties.names()
    rows = [selectors.event_row(m["event"], names) for m in reversed(events)]  # newest first, as `delta` reads them
    html.append(render_to_string(f"{FLOOR}#events_added", {"events": rows}))
    if change.trades:
        trades = floor_sql.trades(parties, ids=change.trades)
        html.append(render_to_string(f"{FLOOR}#trades_added", {"trades": trades}))
    if change.users:
        moved = [h for h in context["holdings"] if h.user_id in change.users]
        html.append(render_to_string(f"{FLOOR}#holdings_changed", {"holdings": moved, "row_oob": True}))
    board = None
    if BOARD in change.panels:
        touched = list(change.rfqs)
        if change.expired_quotes:
            expired = Quote.objects.filter(id__in=change.expired_quotes).values_list("rfq_id", flat=True)
            touched += sorted(set(expired) - set(touched), reverse=True)
        touched_board = selectors.board_data(session, context.get("prices"), touched, parties)
        margin_floor.board_previews(session, touched_board, context.get("margin"))
        open_now = {r["id"]: r for r in touched_board}
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
        "holdings": context.get("holdings"),
        "orders": _orders(session, change.panels, change.owners) if change.owners else None,
        "context": context,
        "previews": _previews(context, None),
    }


def render_if_exists(session_id: str, panels: frozenset[str]) -> dict[str, Any] | None:
    """`render_panels`, or None once the session is gone (a test database flushed under a running
    server), found by the one read of the session it makes anyway, as `render_delta` finds it."""
    try:
        return render_panels(session_id, panels)
    except Session.DoesNotExist:
        return None


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


def render_mine(panels: dict[str, Any], me: Participant | None) -> str | None:
    """This viewer's own position (value, P&L and holdings; payout and rank once settled) from the holdings
    rows of the rendering, or None when it has none of theirs to change: a watcher, the organiser, a batch
    that moved nothing of theirs. Rendered once per holder and rendering (their sockets share it)."""
    holdings, change = panels.get("holdings"), panels.get("delta")
    if me is None or holdings is None or me.role not in domain.HOLDER_ROLES:
        return None
    if change is not None and me.user_id not in change.users:
        return None
    mine = panels.setdefault("mine", {})  # shared by threads, like the boards: at worst one renders twice
    if me.user_id not in mine:
        by_user = panels.get("by_user") or panels.setdefault("by_user", {h.user_id: h for h in holdings})
        context = {"mine": by_user.get(me.user_id), "me": me, "session": panels["session"], "holders": len(holdings)}
        context["previews"] = (panels.get("previews") or {}).get(me.user_id, ())
        html = render_to_string(f"{FLOOR}#mine", context | {"oob": panels.get("oob", True)})
        mine[me.user_id] = _ascii(html) if panels.get("oob", True) else mark_safe(html)
    return mine[me.user_id]


def render_orders(panels: dict[str, Any], me: Participant | None) -> str | None:
    """This holder's order panel of a batch session (order entry, their resting orders, held / reserved /
    available per leg, their fills), or None when the rendering changed nothing of theirs: a watcher, the
    organiser, an RFQ session, a push of somebody else's order. Rendered once per holder and rendering."""
    parts = panels.get("orders")
    if parts is None or me is None or me.role not in domain.HOLDER_ROLES:
        return None
    change = panels.get("delta")
    if change is not None and me.user_id not in change.owners:
        return None
    done = panels.setdefault("orders_html", {})  # shared by threads, like the boards: at worst one renders twice
    if me.user_id not in done:
        oob = panels.get("oob", True)
        html = render_to_string(f"{FLOOR}#orders", orders_context(panels, me, parts.get(me.user_id)) | {"oob": oob})
        done[me.user_id] = _ascii(html) if oob else mark_safe(html)
    return done[me.user_id]


def orders_context(panels: dict[str, Any], me: Participant, mine: batch_floor.Mine | None) -> dict[str, Any]:
    """What the `orders` partial reads: the viewer, their part, the session and where it stands."""
    context = panels.get("context") or {}
    session = panels["session"]
    return {
        "me": me,
        "my": mine or batch_floor.Mine(),
        "session": session,
        "phase": panels["phase"],
        "paused": context.get("paused", session.paused_at is not None),
    }


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


def message(panels: dict[str, Any], board: str | None) -> str:
    """The text a socket is sent: the shared panels (or rows) and its board (or board rows), joined once
    per board rendering (the boards are shared by viewers who stand alike), not once per socket. A
    rendering kept for later viewers (`snapshot`) keeps no joined copies: it lives long, a push does not."""
    if board is None:
        return panels["html"]
    if panels.get("kept"):
        return panels["html"] + board
    messages = panels.setdefault("messages", {})
    key = id(board)  # a rendering kept in the batch's boards for as long as the batch lives
    if key not in messages:
        messages[key] = panels["html"] + board
    return messages[key]
