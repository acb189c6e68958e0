"""PostgreSQL: the trade path against a raw psycopg loop of the same transaction shape, and the site behind
one port served by several daphne processes while writers trade through the API and browsers watch.

    .venv/bin/python -m bench --postgres postgres://user:pw@127.0.0.1:5432/name [--quick]

The role in the URL must be allowed to create databases: the bench works in a scratch database of its own
(`<name>_bench`, dropped and made again), never in the URL's.

Trade path: `services.accept_quote` (each its own transaction, the RFQs and quotes made beforehand) on a
session of 50 participants and 8 legs, against a raw psycopg loop on one connection doing per trade what a
trade costs the database: BEGIN; lock the session row; read the stream's head and the two participants'
holdings; 4 holding updates; 1 TradeExecuted insert hashed with sha256 over canonical JSON; COMMIT.
Commits wait for the disk in both (synchronous_commit on, PostgreSQL's default).

Scale: N daphne processes (N = 2, 4) accept on one port (each its own SO_REUSEPORT socket, handed over
with daphne's `--fd`; the kernel spreads the connections). One session; 16 writer threads trade through
the API on that port (RFQ by the taker, quote by the maker, accept), each with its own keep-alive
connection, for a fixed time; meanwhile signed-in browsers' sockets (bench/push_clients.py), spread over
the processes by the kernel, watch the floor, and 4 programs follow the session's JSON stream. Reported:
trades/s; push latency from each event's time (stamped inside its command, before the commit: an upper
bound of commit -> receipt) to each socket's first floor message at or past it, p99; events lost (a seq
some stream follower never got, or got twice); writes refused "busy". Limits: the raw loop's trades/s,
and a bare ASGI broadcast of a message of the floor's size to the same sockets (bench/push.py).
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import BASE_DIR, Figure, Stopwatch, create_market, fast_setup, latency_summary, make_users
from bench.push import Clients, _echo_limit, _wait_port

FULL = {"prior": 200, "accepts": 200, "raw": 1_000, "processes": [2, 4], "writers": 16, "clients": 500, "seconds": 20}
QUICK = {"prior": 10, "accepts": 20, "raw": 50, "processes": [2], "writers": 4, "clients": 20, "seconds": 3}
FOLLOWERS = 4


def scratch_url(url: str) -> str:
    """Make `<name>_bench` afresh with the URL's role; its URL."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") + "_bench"
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path="/" + name))


def setup_django(url: str) -> str:
    """Django on a fresh scratch database made with `url`'s role, migrated; the scratch URL."""
    scratch = scratch_url(url)
    os.environ["DATABASE_URL"] = scratch
    os.environ["DJANGO_SETTINGS_MODULE"] = "sessionsite.settings"
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return scratch


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def teardown(url: str) -> None:
    from django.db import connections

    connections.close_all()
    import psycopg

    parts = urlsplit(url)
    base = parts.path.lstrip("/").removesuffix("_bench")
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql", path="/" + base)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


# ---------------------------------------------------------------- the trade path


def raw_loop(n: int, participants: int = 50, legs: int = 8) -> float:
    """Trades per second of the raw psycopg loop (see the module's docstring), on its own tables."""
    import psycopg
    from django.db import connection

    from ledger.chain import GENESIS, compute_hash, format_at

    s = connection.settings_dict
    conn = psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"], port=s["PORT"] or None
    )
    rng = random.Random(3)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE raw_lock (id text PRIMARY KEY)")
        cur.execute("INSERT INTO raw_lock VALUES ('raw')")
        cur.execute(
            "CREATE TABLE raw_holding (participant int, leg int, qty bigint NOT NULL, PRIMARY KEY (participant, leg))"
        )
        cur.executemany(
            "INSERT INTO raw_holding VALUES (%s, %s, %s)",
            [(p, k, 10**15) for p in range(participants) for k in range(legs)],
        )
    conn.commit()
    plans = [(*rng.sample(range(participants), 2), *rng.sample(range(legs), 2), rng.randrange(1, 5)) for _ in range(n)]
    stream = "session-raw"
    with Stopwatch() as watch, conn.cursor() as cur:
        for taker, maker, give, get, qty in plans:
            cur.execute("SELECT id FROM raw_lock WHERE id = 'raw' FOR UPDATE")
            cur.execute(
                'SELECT "version", "hash" FROM ledger_event WHERE stream = %s ORDER BY "version" DESC LIMIT 1', [stream]
            )
            version, prev = cur.fetchone() or (0, GENESIS)
            cur.execute("SELECT participant, leg, qty FROM raw_holding WHERE participant IN (%s, %s)", [taker, maker])
            held = {(p, k): q for p, k, q in cur.fetchall()}
            if held[(taker, give)] < qty or held[(maker, get)] < qty:
                raise RuntimeError("raw loop ran out of inventory")
            for delta, who, leg in ((-qty, taker, give), (qty, taker, get), (qty, maker, give), (-qty, maker, get)):
                cur.execute(
                    "UPDATE raw_holding SET qty = qty + %s WHERE participant = %s AND leg = %s", [delta, who, leg]
                )
            deltas = {"taker": taker, "maker": maker, "give": give, "get": get, "qty": qty, "trade_id": version + 1}
            payload = json.dumps(deltas, sort_keys=True, separators=(",", ":"))
            from django.utils import timezone

            now = timezone.now()
            digest = compute_hash(prev, stream, version + 1, "TradeExecuted", format_at(now), payload)
            cur.execute(
                'INSERT INTO ledger_event (stream, "version", type, payload, at, prev_hash, hash) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [stream, version + 1, "TradeExecuted", payload, now, prev, digest],
            )
            conn.commit()
    conn.close()
    return n / watch.seconds


def trade_path(ctx, sizes: dict[str, Any]) -> tuple[Figure, Any, float]:
    from bench.trade import prepare_accepts, time_accepts

    market = create_market("pgtrade", participants=50, legs=8, prefix="pg")
    ctx.log(f"postgres: {sizes['prior']} prior trades")
    with fast_setup():
        for _ in range(sizes["prior"]):
            market.trade()
    pending = prepare_accepts(market, sizes["accepts"])
    ctx.log(f"postgres: {len(pending)} accepts through the services")
    ours = len(pending) / time_accepts(pending, "FULL")
    ctx.log(f"postgres: raw psycopg loop, {sizes['raw']} trades")
    limit = raw_loop(sizes["raw"])
    figure = Figure(
        key="pg.trade",
        section="PostgreSQL",
        name="accepted trades/s through services.accept_quote",
        size=f"50 participants, 8 legs, {sizes['prior']} trades before",
        value=ours,
        unit="trades/s",
        limit=limit,
        limit_name="raw psycopg loop, same transaction shape",
        goal="ratio >= 0.25",
        met=ours / limit >= 0.25,
    )
    return figure, market, limit


# ---------------------------------------------------------------- many daphnes behind one port


class DaphneGroup:
    """N daphne processes accepting on one port: each gets its own SO_REUSEPORT socket by `--fd`."""

    def __init__(self, ctx, n: int) -> None:
        from django.conf import settings

        from sessionsite.testing import child_env, free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = child_env(FEED_POLL_SECONDS=str(settings.FEED_POLL_SECONDS))
        self.procs: list[subprocess.Popen] = []
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(1024)
            fd = sock.fileno()
            log = open(ctx.workdir / f"daphne-pg{n}-{i}.log", "wb")
            command = [sys.executable, "-m", "daphne", "--fd", str(fd), "sessionsite.asgi:application"]
            self.procs.append(subprocess.Popen(command, cwd=BASE_DIR, env=env, pass_fds=[fd], stdout=log, stderr=log))
            sock.close()  # the child holds it
        _wait_port(self.port)
        time.sleep(1.0)  # every process has its socket open (the first to answer is not all of them)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Writer(threading.Thread):
    """Trades through the API until `deadline`: RFQ (taker), quote (maker), accept (taker)."""

    def __init__(
        self, port: int, session_id: str, legs: list[str], taker: str, maker: str, deadline: float, seed: int
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.session_id, self.legs = port, session_id, legs
        self.taker, self.maker, self.deadline = taker, maker, deadline
        self.trades, self.refused, self.busy = 0, 0, 0
        self.codes: dict[str, int] = {}
        self.seconds: list[float] = []  # each request's round trip
        self.rng = random.Random(seed)

    def post(self, conn: http.client.HTTPConnection, token: str, path: str, body: dict) -> dict | None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        sent = time.perf_counter()
        conn.request("POST", f"/api/v1{path}", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read() or b"{}")
        self.seconds.append(time.perf_counter() - sent)
        if response.status in (200, 201):
            return answer
        self.refused += 1
        code = str(answer.get("code") or response.status)
        self.codes[code] = self.codes.get(code, 0) + 1
        self.busy += code == "busy"
        return None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while time.monotonic() < self.deadline:
            give, get = self.rng.sample(self.legs, 2)
            rfq = self.post(
                conn,
                self.taker,
                f"/sessions/{self.session_id}/rfq",
                {"give_leg": give, "get_leg": get, "quantity": "1"},
            )
            quote = rfq and self.post(conn, self.maker, f"/rfq/{rfq['id']}/quote", {"rate": "1", "ttl_seconds": 600})
            if quote and self.post(conn, self.taker, f"/quotes/{quote['id']}/accept", {}):
                self.trades += 1
        conn.close()


async def _follow(url: str, token: str, stop: threading.Event, seqs: list[int]) -> None:
    import websockets

    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
            except TimeoutError:
                continue
            if message["type"] == "event":
                seqs.append(message["event"]["seq"])


def scale(ctx, sizes: dict[str, Any], processes: int, trade_limit: float, echo_port: int) -> Figure:
    from bench.push import latencies
    from bench.web import session_cookie
    from ledger.models import Event
    from markets.tokens import create_token

    sid = f"pgscale{processes}"
    writers_n = sizes["writers"]  # one trader each; a maker for every four (create_market's mix)
    market = create_market(sid, participants=writers_n + max(1, writers_n // 4) + 1, legs=8, prefix=f"s{processes}")
    holders = [*market.traders, *market.makers, market.organiser]
    watchers = list(make_users([f"pgwatch{i:04d}" for i in range(max(0, sizes["clients"] - len(holders)))]).values())
    with fast_setup():
        cookies = [session_cookie(u) for u in (holders + watchers)[: sizes["clients"]]]
        tokens = {u.username: create_token(u, "bench")[1] for u in holders}
    group = DaphneGroup(ctx, processes)
    followers: list[list[int]] = [[] for _ in range(FOLLOWERS)]
    stop = threading.Event()
    try:
        ws = f"ws://127.0.0.1:{group.port}/ws/sessions/{sid}"
        ctx.log(f"postgres: {processes} daphnes on port {group.port}, {len(cookies)} floor sockets")
        clients = Clients(ctx, ws + "/", [{"Cookie": c, "Origin": group.url} for c in cookies], f"pg{processes}")

        async def follow_all() -> None:
            await asyncio.gather(*(_follow(ws, tokens[market.organiser.username], stop, s) for s in followers))

        follower_thread = threading.Thread(target=asyncio.run, args=(follow_all(),), daemon=True)
        follower_thread.start()
        time.sleep(1.0)
        first = Event.objects.filter(stream=f"session-{sid}").order_by("-seq").values_list("seq", flat=True).first()
        deadline = time.monotonic() + sizes["seconds"]
        pairs = zip(market.traders[:writers_n], itertools.cycle(market.makers), strict=False)
        writers = [
            Writer(group.port, sid, market.legs, tokens[t.username], tokens[m.username], deadline, seed=i)
            for i, (t, m) in enumerate(pairs)
        ]
        ctx.log(f"postgres: {len(writers)} writers for {sizes['seconds']} s")
        with Stopwatch() as watch:
            for w in writers:
                w.start()
            for w in writers:
                w.join()
        rows = list(
            Event.objects.filter(stream=f"session-{sid}", seq__gt=first).order_by("seq").values_list("seq", "at")
        )
        last = rows[-1][0] if rows else first
        clients.wait_for(last, timeout=30)
        time.sleep(1.0)  # the stream followers drain
        stop.set()
        follower_thread.join(10)
        records = clients.finish()
    finally:
        group.stop()
    written = [seq for seq, _ in rows]
    lost = sum(len(set(written) - set(s)) + (len(s) - len(set(s))) for s in followers)
    got, missed, msg_sizes = latencies(records, [(seq, at.timestamp()) for seq, at in rows])
    size = int(sum(msg_sizes) / max(1, len(msg_sizes)))
    limit, _ = _echo_limit(ctx, echo_port, len(cookies), size, 5, random.Random(5))
    summary, limit_summary = latency_summary(got or [0.0]), latency_summary(limit or [0.0])
    trades = sum(w.trades for w in writers)
    busy = sum(w.busy for w in writers)
    refused = sum(w.refused for w in writers)
    detail = {
        "trades": trades,
        "trades_per_s": trades / watch.seconds,
        "trades_per_s_limit": trade_limit,
        "events": len(rows),
        "busy": busy,
        "refused": refused,
        "refused_by_code": {
            c: sum(w.codes.get(c, 0) for w in writers) for c in sorted({c for w in writers for c in w.codes})
        },
        "request": latency_summary([x for w in writers for x in w.seconds] or [0.0]),
        "lost": lost,
        "missed_by_sockets": missed,
        "ours": summary,
        "limit": limit_summary,
        "message_bytes": size,
    }
    ctx.log(f"postgres: {processes} daphnes: {trades / watch.seconds:.1f} trades/s, p99 {summary['p99_ms']:.0f} ms")
    return Figure(
        key=f"pg.scale.{processes}",
        section="PostgreSQL",
        name=f"push p99 to {len(cookies)} sockets over {processes} daphnes, {len(writers)} API writers "
        f"({trades / watch.seconds:.1f} trades/s vs raw loop {trade_limit:.0f}; {lost} lost, {busy} busy)",
        size=f"one session, {len(rows)} events in {sizes['seconds']} s",
        scale=f"{processes} processes",
        value=summary["p99_ms"],
        unit="ms p99",
        limit=limit_summary["p99_ms"],
        limit_name=f"bare ASGI broadcast of {size:,} bytes to the same sockets (p99)",
        higher_is_better=False,
        goal="p99 < 250 ms, 0 lost, 0 busy",
        met=summary["p99_ms"] < 250 and lost == 0 and busy == 0 and missed == 0,
        detail=detail,
    )


def run(ctx) -> list[Figure]:
    from sessionsite.testing import free_port

    sizes = QUICK if ctx.quick else FULL
    figure, _, limit = trade_path(ctx, sizes)
    figures = [figure]
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(echo_port), "bench.echo_asgi:application"],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=open(ctx.workdir / "daphne-echo.log", "wb"),
        env=dict(os.environ),
    )  # fmt: skip
    try:
        _wait_port(echo_port)
        for n in sizes["processes"]:
            figures.append(scale(ctx, sizes, n, limit, echo_port))
    finally:
        echo.terminate()
        echo.wait(10)
    return figures


def page(result: dict[str, Any], figures: list[Figure]) -> str:
    """docs/benchmarks-postgres.md: the table, the machine and what each figure means."""
    from bench import report

    m = result["machine"]
    doc = (__doc__ or "").split("\n\n", 1)[1]
    lines = [
        "# Benchmarks on PostgreSQL",
        "",
        f"`{result['command']}`, {result['started_at']} to {result['finished_at']} "
        f"({result['seconds']:.0f} s). Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; "
        f"PostgreSQL {m['postgresql']}; Python {m.get('python', '?')}. Ratio = how much of the machine's own "
        "limit, measured in the same run, the figure reaches (1.0 = as fast as the limit).",
        "",
        report.markdown_table(figures),
        "",
        "## What is measured",
        "",
        doc.strip(),
        "",
    ]
    for f in figures:
        if f.key.startswith("pg.scale"):
            d = f.detail
            lines.append(
                f"- {f.scale}: {d['trades']} trades ({d['trades_per_s']:.1f}/s), {d['events']} events; push p50 "
                f"{d['ours']['p50_ms']:.0f} ms, p99 {d['ours']['p99_ms']:.0f} ms, max {d['ours']['max_ms']:.0f} ms; "
                f"{d['lost']} lost, {d['busy']} busy, {d['refused']} refused in all, "
                f"{d['missed_by_sockets']} (event, socket) pairs never reached; floor message {d['message_bytes']:,} bytes."
            )
    return "\n".join(lines) + "\n"
