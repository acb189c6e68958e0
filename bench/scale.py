"""Scale: N daphne processes (N = 2, 4) accept on one port (each its own SO_REUSEPORT socket, handed over
with daphne's `--fd`; the kernel spreads the connections). One session; 16 writer threads trade through
the API on that port (RFQ by the taker, quote by the maker, accept), each with its own keep-alive
connection, for a fixed time; meanwhile signed-in browsers' sockets (bench/push_clients.py), spread over
the processes by the kernel, watch the floor, and 4 programs follow the session's JSON stream. Reported:
trades/s; push latency from each event's time (stamped inside its command, before the commit: an upper
bound of commit -> receipt) to each socket's first floor message at or past it, p99; events lost (a seq
some stream follower never got, or got twice); writes refused "busy". Limits: the machine's raw
transaction loop for trades/s (bench/trade.py on SQLite, bench/postgres.py on PostgreSQL), and a bare ASGI
broadcast of a message of the floor's size to the same sockets (bench/push.py).

Engine-neutral: `python -m bench --only scale` runs it on a SQLite file, `python -m bench --postgres URL`
on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import random
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from bench.common import BASE_DIR, Figure, Stopwatch, create_market, fast_setup, latency_summary, make_users
from bench.push import Clients, _echo_limit, _wait_port

FULL = {"processes": [2, 4], "writers": 16, "clients": 500, "seconds": 20}
QUICK = {"processes": [2], "writers": 4, "clients": 20, "seconds": 3}
FOLLOWERS = 4


class DaphneGroup:
    """N daphne processes accepting on one port: each gets its own SO_REUSEPORT socket by `--fd`."""

    def __init__(self, ctx, n: int, name: str) -> None:
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
            log = open(ctx.workdir / f"daphne-{name}{n}-{i}.log", "wb")
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


def scale(ctx, sizes: dict[str, Any], processes: int, trade_limit: float, echo_port: int, engine: str) -> Figure:
    from bench.push import latencies
    from bench.web import session_cookie
    from ledger.models import Event
    from markets.tokens import create_token

    sid = f"scale{processes}"
    writers_n = sizes["writers"]  # one trader each; a maker for every four (create_market's mix)
    market = create_market(sid, participants=writers_n + max(1, writers_n // 4) + 1, legs=8, prefix=f"sc{processes}")
    holders = [*market.traders, *market.makers, market.organiser]
    watchers = list(make_users([f"watch{i:04d}" for i in range(max(0, sizes["clients"] - len(holders)))]).values())
    with fast_setup():
        cookies = [session_cookie(u) for u in (holders + watchers)[: sizes["clients"]]]
        tokens = {u.username: create_token(u, "bench")[1] for u in holders}
    group = DaphneGroup(ctx, processes, engine)
    followers: list[list[int]] = [[] for _ in range(FOLLOWERS)]
    stop = threading.Event()
    try:
        ws = f"ws://127.0.0.1:{group.port}/ws/sessions/{sid}"
        ctx.log(f"{engine}: {processes} daphnes on port {group.port}, {len(cookies)} floor sockets")
        clients = Clients(ctx, ws + "/", [{"Cookie": c, "Origin": group.url} for c in cookies], f"{engine}{processes}")

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
        ctx.log(f"{engine}: {len(writers)} writers for {sizes['seconds']} s")
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
    ctx.log(f"{engine}: {processes} daphnes: {trades / watch.seconds:.1f} trades/s, p99 {summary['p99_ms']:.0f} ms")
    return Figure(
        key=f"{'pg.' if engine == 'postgresql' else ''}scale.{processes}",
        section="PostgreSQL" if engine == "postgresql" else "Scale",
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


def run_all(ctx, sizes: dict[str, Any], trade_limit: float, engine: str) -> list[Figure]:
    """The scale figure for each process count, beside the bare broadcast limit."""
    from sessionsite.testing import free_port

    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(echo_port), "bench.echo_asgi:application"],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=open(ctx.workdir / f"daphne-echo-{engine}.log", "wb"),
    )  # fmt: skip
    try:
        _wait_port(echo_port)
        return [scale(ctx, sizes, n, trade_limit, echo_port, engine) for n in sizes["processes"]]
    finally:
        echo.terminate()
        echo.wait(10)


def run(ctx) -> list[Figure]:
    """The section on the bench's own database (SQLite), after the trade section measured the raw loop."""
    return run_all(ctx, QUICK if ctx.quick else FULL, ctx.notes["raw_trades_per_s"], "sqlite")
