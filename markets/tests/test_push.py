"""What a push carries and how it gets there: the smallest push that covers a batch, boards shared
between viewers who stand alike (and identical to a board rendered for each), commits by other
processes seen by watching the database file, and a channel layer that keeps long-open floors."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from ledger import clock
from markets import selectors, services
from markets.models import Participant, Session
from markets.push import fanout as live
from markets.push import panels, render
from markets.tests.test_consumers import connect, in_thread, receive_until
from sessionsite.testing import child_env

# Pushes go through Channels' own send with STOCK_SERVER=true: the frame writer is not in use then.
frame_writer = pytest.mark.skipif(
    django_settings.STOCK_SERVER,
    reason="STOCK_SERVER=true: pushes go through Channels' send, not markets/push/frames.py",
)


def configured_layer(**config):
    """A channel layer of the class the settings name (sessionsite.layers' swept one; Channels' own in
    stock mode)."""
    return import_string(django_settings.CHANNEL_LAYERS["default"]["BACKEND"])(**config)


QUOTE = {"status", "events", "board"}
# Its chart mark comes with the next tick; in a session with batch auctions too, the parties' available
# quantities moved (their own order panels, "orders").
TRADE = {"status", "holdings", "blotter", "pool", "events", "board", "orders"}


@pytest.mark.parametrize(
    ("types", "push"),
    [
        ({"RFQRequested"}, QUOTE),
        ({"QuoteProvided", "QuoteWithdrawn", "RFQCancelled", "QuotesExpired"}, QUOTE),
        ({"TradeExecuted"}, TRADE),
        ({"RFQRequested", "TradeExecuted"}, TRADE),
        ({"tick"}, {"status", "fixing", "legs", "chart", "holdings", "pool"}),
        ({"SessionSettled"}, panels.EVERYTHING),
        ({"TradeExecuted", "SessionSettled"}, panels.EVERYTHING),
        ({"ParticipantJoined"}, panels.EVERYTHING),
        ({"TradingClosed"}, panels.EVERYTHING),
        ({"SomethingNew"}, panels.EVERYTHING),  # an event type nobody mapped gets the whole floor
    ],
)
def test_a_batch_pushes_only_the_panels_it_made_stale(types, push):
    assert panels.stale(types) == push


def test_the_panel_registry_and_the_floor_template_agree():
    """Every registered panel is a partial of the floor that can go out of band, and the page has each."""
    source = Path(django_settings.BASE_DIR, "templates", panels.FLOOR).read_text()
    defined = set(re.findall(r"{% partialdef (\w+)", source))
    assert {*panels.PANELS, panels.BOARD} <= defined
    for name in (*panels.PANELS, panels.BOARD):
        body = source.split(f"{{% partialdef {name}", 1)[1].split("{% endpartialdef %}", 1)[0]
        assert f'id="{name}"' in body and 'hx-swap-oob="true"' in body, name


@pytest.mark.django_db
def test_a_push_for_a_session_that_is_gone_is_not_rendered(users, demo):
    """The feed may read a batch of a session that is no longer there (a test database flushed under a
    running server): its rendering is None, not an error; a session that is there renders its panels."""
    assert render.render_if_exists("nowhere", panels.stale(["QuoteProvided"])) is None
    shown = render.render_if_exists("demo", panels.stale(["QuoteProvided"]))
    assert shown["session"].id == "demo" and 'id="status"' in shown["html"]


@pytest.mark.django_db
def test_shared_boards_equal_a_board_rendered_for_each_viewer(users, demo):
    """Alice's and Bob's RFQs, quotes by both makers: every participant and a watcher get exactly the
    board a per-viewer rendering gives, and viewers who stand alike share one rendering."""
    a = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    b = services.request_rfq(users["bob"], "demo", "META", "ORCL", "5")
    services.provide_quote(users["mm"], a.id, "0.62")
    services.provide_quote(users["mm2"], a.id, "0.61")
    services.provide_quote(users["mm2"], b.id, "1.5")
    panels = render.render_panels("demo")
    session = Session.objects.get(id="demo")
    viewers = [*Participant.objects.filter(session_id="demo").order_by("username"), None]
    for me in viewers:
        expected = render_to_string(
            "markets/floor.html#board",
            {
                "session": session,
                "phase": session.phase(clock.now()),
                "board": selectors.board_data(session),
                "me": me,
                "is_organiser": bool(me and me.role == "organiser"),
                "oob": True,
            },
        )
        got = render.render_board(panels, me)
        assert html.unescape(got) == expected, me
        assert got.isascii()
    assert render.render_board(panels, None) is render.render_board(panels, None)
    assert len(panels["boards"]) < len(viewers)  # the organiser and the watcher see the same board


def _event(seq: int, version: int, type_: str, **payload) -> dict:
    return {"seq": seq, "version": version, "type": type_, "payload": payload}


def test_a_batch_of_quoting_and_trading_is_told_as_rows():
    batch = [
        _event(40, 7, "RFQRequested", rfq_id=3, taker_id=11),
        _event(42, 8, "QuoteProvided", rfq_id=3, quote_id=5, maker_id=12),
        _event(43, 9, "QuoteWithdrawn", rfq_id=2, quote_id=4),
        _event(47, 10, "TradeExecuted", trade_id=9, rfq_id=1, quote_id=2, taker_id=13, maker_id=12),
        _event(48, 11, "QuotesExpired", quote_ids=[6, 8]),
    ]
    change = panels.delta(batch)
    assert (change.after, change.version) == (6, 11)  # applies to a floor at version 6, brings it to 11
    assert change.trades == (9,) and change.users == {12, 13}
    assert change.rfqs == (1, 2, 3) and change.new_rfqs == {3}
    assert change.expired_quotes == (6, 8)
    assert change.panels == panels.stale(e["type"] for e in batch)


@pytest.mark.parametrize(
    "batch",
    [
        [_event(40, 7, "RFQRequested", rfq_id=3, taker_id=11), _event(41, 8, "ParticipantJoined", username="x")],
        [_event(40, 7, "TradingPaused", reason="")],
        [_event(40, 7, "RFQCancelled", rfq_id=3), _event(44, 9, "RFQCancelled", rfq_id=4)],  # version 8 missing
        [],
    ],
)
def test_a_batch_that_changes_more_than_rows_goes_whole(batch):
    assert panels.delta(batch) is None


class _Viewer:
    def __init__(self, version: int | None) -> None:
        self.ready, self.missed, self.version = True, False, version
        self.got: list[dict] = []

    async def push(self, rendering: dict) -> None:
        self.got.append(rendering)


@pytest.mark.django_db(transaction=True)
async def test_rows_go_to_floors_that_stand_where_they_start_and_the_others_get_the_whole_floor(users, demo):
    """A floor at the version the rows start from gets the rows; one already past them gets nothing; one
    behind them (it missed something) or not known gets the whole floor, rendered once for all of them."""
    rfq = await sync_to_async(services.request_rfq)(users["alice"], "demo", "AAPL", "NVDA", "10")
    session = await Session.objects.aget(id="demo")
    event = await sync_to_async(lambda: live.event_message(selectors_event(session.last_seq)))()
    change = panels.delta([event["event"]])
    rows = await sync_to_async(render.render_delta)("demo", change, [event])
    viewers = {name: _Viewer(v) for name, v in (("at", change.after), ("past", change.version), ("behind", 0),
                                                ("unknown", -1), ("monitor", None))}  # fmt: skip
    for viewer in viewers.values():
        live.watch("demo", viewer)
        viewer.ready = True
    try:
        await live.deliver("demo", rows)
    finally:
        for viewer in viewers.values():
            live.unwatch("demo", viewer)
    assert viewers["at"].got == [rows] and viewers["monitor"].got == [rows]
    assert viewers["past"].got == []
    whole = viewers["behind"].got[0]
    assert viewers["unknown"].got == [whole] and whole.get("delta") is None
    assert whole["version"] == session.version and 'id="holdings"' in whole["html"]
    assert any(r["id"] == rfq.id for r in whole["board"])


def selectors_event(seq: int):
    from ledger.models import Event

    return Event.objects.get(seq=seq)


async def _next_push(comm, needle: str) -> str:
    message, _ = await receive_until(comm, needle)
    return message


@pytest.mark.django_db(transaction=True)
async def test_quoting_and_trading_push_rows_not_panels(users, demo):
    """An RFQ adds its row to the board and one row to the log; a quote replaces that RFQ's row; a trade
    adds a blotter row, replaces the two holdings rows it moved, and takes the RFQ off the board. The
    whole log, blotter, holdings and board never go: nobody else's rows are sent again."""
    comm = await connect(users["mm"])
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)
    rfq = await sync_to_async(in_thread)(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
    message = await _next_push(comm, "RFQRequested")
    assert re.search(rf'<div hx-swap-oob="afterbegin:#rfqs">\s*<div class="rfq" id="rfq-{rfq.id}">', message)
    assert 'hx-swap-oob="afterbegin:#events-rows"' in message and message.count('<tr id="ev-') == 1
    assert 'id="status"' in message
    for whole in ('id="events"', 'id="board"', 'id="holdings"', 'id="blotter"', 'id="legs"'):
        assert whole not in message
    quote = await sync_to_async(in_thread)(services.provide_quote, users["mm"], rfq.id, "0.62")
    message = await _next_push(comm, "QuoteProvided")
    assert f'id="rfq-{rfq.id}" hx-swap-oob="true"' in message and f'id="quote-{quote.id}"' in message
    await sync_to_async(in_thread)(services.accept_quote, users["alice"], quote.id)
    message = await _next_push(comm, "TradeExecuted")
    moved = re.findall(r'<tr id="holding-(\d+)" data-user="(\w+)" hx-swap-oob="true">', message)
    assert sorted(name for _, name in moved) == ["alice", "mm"]
    assert "8.800000" in message  # mm's NVDA: 15 - 6.2
    assert 'hx-swap-oob="afterbegin:#blotter-rows"' in message and message.count('<tr id="trade-') == 1
    assert 'id="pool"' in message and 'id="chart"' not in message  # its mark comes with the next tick
    assert f'<div id="rfq-{rfq.id}" hx-swap-oob="delete"></div>' in message  # filled: off the board
    for whole in ('id="events"', 'id="board"', 'id="holdings"', 'id="blotter"'):
        assert whole not in message
    await comm.disconnect()


async def feed_started(timeout: float = 10) -> None:
    """Until this process's feed holds a cursor for every source (the first consumer started it)."""
    from markets.push.feed import feed

    deadline = time.monotonic() + timeout
    while any(source.cursor is None for source in feed.sources.values()):
        assert time.monotonic() < deadline, "the feed did not start"
        await asyncio.sleep(0.02)


@pytest.mark.sqlite_only("the write-ahead log and its index are SQLite's files")
def test_every_commit_changes_the_signature_the_feed_watches_even_when_the_log_looks_untouched(tmp_path):
    """Once checkpointed, the write-ahead log is written again from its start: a small commit leaves its
    size as it was, and within one tick of the file system's clock its modification time too. The feed
    must still see that commit (the header of the log's index changes)."""
    import os
    import sqlite3

    from markets.push.feed import file_signature

    db = str(tmp_path / "watched.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))  # a log of many pages
    writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    log = os.stat(f"{db}-wal")
    before = file_signature(db)
    writer.execute("INSERT INTO t VALUES ('y')")  # written over the log's first pages
    os.utime(f"{db}-wal", ns=(log.st_atime_ns, log.st_mtime_ns))  # as if in the same tick of the clock
    after = os.stat(f"{db}-wal")
    assert (after.st_size, after.st_mtime_ns) == (log.st_size, log.st_mtime_ns)
    assert file_signature(db) != before
    assert file_signature(db) == file_signature(db)  # and nothing changes it but a commit
    writer.close()


@pytest.mark.sqlite_only("SQLite's locks on its write-ahead log index")
def test_watching_the_database_keeps_the_locks_of_this_process_s_readers(tmp_path):
    """SQLite's locks belong to the process, and closing any descriptor of the file drops them all. The
    feed looks at the log's index every few ms while requests of the same process read: a reader must
    stay protected, so a checkpoint in another process still cannot restart the log under it."""
    import sqlite3

    from markets.push.feed import file_signature

    db = str(tmp_path / "read.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # a read holding its snapshot
    writer.execute("INSERT INTO t VALUES (2)")  # past the reader: a full checkpoint must wait for it
    restart = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
        "print(c.execute('PRAGMA wal_checkpoint(RESTART)').fetchone()[0])"
    )

    def checkpoint_blocked() -> bool:
        out = subprocess.run([sys.executable, "-c", restart, db], capture_output=True, text=True, check=True)
        return out.stdout.strip() == "1"

    assert checkpoint_blocked()
    for _ in range(3):
        file_signature(db)
    assert checkpoint_blocked(), "the reader's lock was dropped by the watch"
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    reader.execute("COMMIT")
    assert not checkpoint_blocked()
    reader.close()
    writer.close()


@pytest.mark.django_db(transaction=True)
async def test_a_commit_by_another_process_arrives_long_before_the_poll_interval(users, demo, settings):
    """With polls a minute apart, an RFQ made by a `manage.py shell` process still arrives within a second
    or so (a few on a loaded machine): the feed watches the database file's write-ahead log."""
    settings.FEED_POLL_SECONDS = 60  # only the write-ahead log's watch can deliver it within the wait below
    comm = await connect(users["bob"])
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)
    await feed_started()  # it has taken its starting cursor and is waiting
    code = (
        "from django.contrib.auth import get_user_model; from markets import services; "
        "services.request_rfq(get_user_model().objects.get(username='alice'), 'demo', 'AAPL', 'NVDA', '3')"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "manage.py", "shell", "-v0", "-c", code], env=child_env(), timeout=60
    )
    committed = time.monotonic()
    assert done.returncode == 0
    await receive_until(comm, "RFQRequested", timeout=10)
    assert time.monotonic() - committed < 10
    await comm.disconnect()


async def test_a_floor_left_open_for_days_keeps_its_group(monkeypatch):
    layer = configured_layer(**django_settings.CHANNEL_LAYERS["default"]["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("floor.demo", channel)
    later = time.time() + 3 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    layer._swept = 0.0  # the next receive sweeps
    await layer.group_send("floor.demo", {"type": "floor.update", "batch": 1})
    assert (await asyncio.wait_for(layer.receive(channel), 1))["batch"] == 1


async def test_unread_messages_still_expire():
    layer = configured_layer(expiry=0.05)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x", "n": 1})
    await asyncio.sleep(0.1)
    layer._swept = 0.0
    await layer.send(channel, {"type": "x", "n": 2})
    assert (await asyncio.wait_for(layer.receive(channel), 1))["n"] == 2


@pytest.mark.django_db(transaction=True)
async def test_a_page_rendered_at_the_current_position_is_not_sent_the_floor_again(users, demo):
    """A fresh page's socket gets no copy of what the page already shows (which would overwrite an
    inline error or a half-typed form); a page that is behind gets the whole floor."""
    at = await sync_to_async(selectors.floor_position)("demo")
    fresh = await connect(users["alice"], f"/ws/sessions/demo/?at={at}")
    assert (await fresh.connect())[0]
    assert await fresh.receive_nothing(timeout=0.5)
    await sync_to_async(in_thread)(services.request_rfq, users["bob"], "demo", "AAPL", "NVDA", "1")
    await _next_push(fresh, "RFQRequested")  # later changes still arrive
    behind = await connect(users["alice"], f"/ws/sessions/demo/?at={at}")
    assert (await behind.connect())[0]
    first = await behind.receive_from(timeout=5)
    assert 'id="holdings"' in first and 'id="board"' in first
    await fresh.disconnect()
    await behind.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_push_made_while_a_socket_connects_is_in_its_first_floor(users, demo, monkeypatch):
    """An RFQ commits while a socket's floor is being read: its push comes before the socket is ready to
    take pushes, and the floor read is older than it. The socket loses nothing: its first floor is read
    again and shows the RFQ. Closed sockets are forgotten by the fan-out."""
    from markets.push.consumers import FloorConsumer

    first = await connect(users["mm"])  # its connect starts this process's feed
    assert (await first.connect())[0]
    await first.receive_from(timeout=5)
    await feed_started()
    arrival = FloorConsumer._arrival
    made: dict = {}

    def arrival_during_a_commit(consumer, shown):
        read = arrival(consumer, shown)  # the floor before the RFQ
        made["rfq"] = in_thread(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
        deadline = time.monotonic() + 10
        while not consumer.missed:  # the push of the RFQ reached this socket while it was connecting
            assert time.monotonic() < deadline, "no push came while the socket connected"
            time.sleep(0.01)
        return read

    monkeypatch.setattr(FloorConsumer, "_arrival", arrival_during_a_commit)
    late = await connect(users["mm2"])
    assert (await late.connect())[0]
    floor = html.unescape(await late.receive_from(timeout=10))
    assert 'id="holdings"' in floor and f'id="rfq-{made["rfq"].id}"' in floor
    await _next_push(first, "RFQRequested")  # the ready socket had it as a push
    await first.disconnect()
    await late.disconnect()
    loop = asyncio.get_running_loop()
    assert not [viewer for viewer, its_loop in live._viewers.get("demo", {}).items() if its_loop is loop]


@pytest.mark.django_db(transaction=True)
async def test_a_commit_just_after_the_first_socket_read_its_floor_is_pushed_to_it(users, demo, monkeypatch):
    """The first socket of a process starts its feed. An RFQ that commits right after that socket read
    its floor is not in the floor, so it must come as a push: the feed took its starting position before
    the floor was read, not after (it would then start past the RFQ and never send it)."""
    from markets.push.consumers import FloorConsumer

    arrival = FloorConsumer._arrival
    made: dict = {}

    def commit_after_reading(consumer, shown):
        read = arrival(consumer, shown)  # the feed of this new loop stands where it started, below the RFQ
        made["rfq"] = in_thread(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
        return read

    monkeypatch.setattr(FloorConsumer, "_arrival", commit_after_reading)
    comm = await connect(users["mm"])  # a new event loop: the feed of the last test's loop is gone
    assert (await comm.connect())[0]
    await receive_until(comm, f'id="rfq-{made["rfq"].id}"', timeout=10)  # in its floor read again, or pushed
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_commit_just_after_the_first_stream_read_its_backlog_is_sent_to_it(users, demo, monkeypatch):
    """The same for the JSON stream: an event committed after its backlog was read comes live, once."""
    from markets.push.consumers import StreamConsumer
    from markets.push.feed import feed

    backlog = StreamConsumer._backlog
    made: dict = {}

    def commit_after_reading(consumer):
        assert all(source.cursor is not None for source in feed.sources.values()), "read before the feed started"
        read = backlog(consumer)
        made["rfq"] = in_thread(services.request_rfq, users["alice"], "demo", "AAPL", "NVDA", "10")
        return read

    monkeypatch.setattr(StreamConsumer, "_backlog", commit_after_reading)
    comm = await connect(users["mm"], "/ws/sessions/demo")
    assert (await comm.connect())[0]
    seqs = []
    deadline = time.monotonic() + 10
    while not any(e["type"] == "RFQRequested" for e in seqs):
        assert time.monotonic() < deadline, "the RFQ committed after the backlog was never sent"
        message = await comm.receive_json_from(timeout=10)
        if message["type"] == "event":
            seqs.append(message["event"])
    assert len({e["seq"] for e in seqs}) == len(seqs)  # nothing twice
    assert seqs[-1]["payload"]["rfq_id"] == made["rfq"].id
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_is_told_to_come_back_while_the_feed_cannot_start_and_then_is_served(
    users, demo, monkeypatch, caplog
):
    """The follower's first read fails (a database that does not answer): a socket waits a bounded time,
    then is closed with 1013 "try again later" (the JSON stream says why), one log line, no traceback.
    Once the database answers, the next socket is served as usual."""
    from markets.push import feed as feed_module

    live_feed = feed_module.feed
    await live.start()  # registered and running on this loop
    source = live_feed.sources["events"]
    healthy = source.start

    def unavailable():
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(feed_module, "START_SECONDS", 0.5)
    monkeypatch.setattr(source, "start", unavailable)
    live_feed._task.cancel()  # a fresh start on this loop: its first read now fails
    await asyncio.sleep(0)
    floor = await connect(users["mm"])
    connected, _ = await floor.connect()
    assert connected
    assert (await floor.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}
    stream = await connect(users["mm"], "/ws/sessions/demo")
    assert (await stream.connect())[0]
    said = await stream.receive_json_from(timeout=5)
    assert said["code"] == "try_again" and "try again" in said["message"]
    assert (await stream.receive_output(timeout=5))["code"] == 1013
    assert any("refused (1013)" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(source, "start", healthy)
    served = await connect(users["mm"])
    assert (await served.connect())[0]
    assert 'id="holdings"' in await served.receive_from(timeout=10)
    await served.disconnect()


def _socket(factory, *, state: str = "STATE_OPEN"):
    """A daphne WebSocket protocol (autobahn's) on a transport that keeps what is written to it."""
    from twisted.internet.testing import StringTransport

    socket = factory.buildProtocol(None)
    socket.makeConnection(StringTransport())
    socket.transport.clear()  # nothing of the handshake was written yet; start from an empty wire
    socket.state = getattr(socket, state)
    return socket


@frame_writer
def test_a_push_is_framed_once_for_every_socket_sent_the_same_text():
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.ws_protocol import WebSocketProtocol

    from markets.push import frames

    factory = WebSocketServerFactory()
    factory.protocol = WebSocketProtocol
    factory.server_class = None
    framed = []
    prepare = factory.prepareMessage
    factory.prepareMessage = lambda payload: framed.append(payload) or prepare(payload)
    sockets = [_socket(factory) for _ in range(3)] + [_socket(factory, state="STATE_CLOSED")]
    busy = sockets[2]
    busy.send_queue.append((b"before", False))  # something queued first: the frame goes after it
    push: dict = {}
    for socket in sockets:
        assert frames.send_shared({frames.SOCKET: socket}, "<div id='x'>é</div>", push)
    assert framed == ["<div id='x'>é</div>".encode()]  # framed once
    frame = sockets[0].transport.value()
    assert frame[0] == 0x81 and frame.endswith("<div id='x'>é</div>".encode())  # one final text frame
    assert sockets[1].transport.value() == frame and sockets[0].trafficStats.outgoingOctetsWireLevel == len(frame)
    # autobahn's own path: what was queued before goes first
    assert busy.transport.value() + b"".join(item[0] for item in busy.send_queue) == b"before" + frame
    assert sockets[3].transport.value() == b""  # a closed socket gets nothing
    assert not frames.send_shared({}, "text", push)  # no daphne socket (a test communicator): sent as usual


@frame_writer
def test_a_frame_goes_to_an_idle_socket_at_once_and_after_what_twisted_still_buffers():
    """frames._write on a real TCP connection (Twisted's, over a kernel socket pair): an idle socket gets
    the frame from the kernel at once, with no watch on the event loop; once the kernel's buffer is full
    the rest waits in Twisted's buffer, and later frames queue behind it, so the peer reads every byte in
    order."""
    import socket

    from twisted.internet import tcp
    from twisted.internet.testing import MemoryReactor

    from markets.push import frames

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    reactor = MemoryReactor()
    transport = tcp.Connection(ours, None, reactor)
    transport.connected = True

    class Channel:  # a streaming producer on the transport, as daphne's HTTP channel is
        paused = False

        def pauseProducing(self):
            self.paused = True

        def resumeProducing(self):
            self.paused = False

    channel = Channel()
    transport.registerProducer(channel, True)

    frames._write(transport, b"first")
    assert peer.recv(100) == b"first" and reactor.writers == set()  # sent now; the loop never watched

    big = bytes(range(256)) * 40_000  # more than the kernel takes at once
    frames._write(transport, big)
    frames._write(transport, b"last")
    assert reactor.writers == {transport}  # the rest waits in Twisted's buffer for the loop
    assert channel.paused  # which is full: Twisted holds the producer back, as for any write
    got = bytearray()
    peer.setblocking(False)
    while len(got) < len(big) + 4:
        try:
            got += peer.recv(1 << 20)
        except BlockingIOError:
            transport.doWrite()  # the loop's turn: Twisted writes what it buffered
    assert bytes(got) == big + b"last" and not channel.paused
    frames._write(transport, b"again")
    assert peer.recv(100) == b"again"  # idle again: straight to the kernel
    ours.close(), peer.close()
