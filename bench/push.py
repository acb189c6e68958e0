"""Push: one ledger event fanned out to N signed-in WebSocket clients of one session on ONE daphne process;
latency from the commit (stamped in the writer process by an on_commit hook) to each client's receipt
(stamped in the clients' process), on the same machine clock.

The clients (bench/push_clients.py, one asyncio process) connect to /ws/sessions/<id>/ with their own
session cookie: the session's participants first, then signed-in watchers. The writer is this process:
`services.request_rfq` commits one RFQRequested event; daphne's ledger feed sees the write-ahead log
change (it looks every 10 ms, and polls every FEED_POLL_SECONDS) and pushes the changed panels to every
client. The writer waits until every client has the event before the next one, then a random pause,
so each event is measured alone and lands at a random point of the watch cycle.

A second row has the writer inside the web process (POST /api/v1/sessions/<id>/rfq on the same daphne):
its on_commit nudge wakes the feed at once. Its commit time is not visible from outside, so the time the
request was sent stands in for it: an upper bound of the latency.

The machine limit: bench/echo_asgi.py on its own daphne, the same clients, a message of the same size
as the floor's pushes broadcast by a bare ASGI loop (no Django, no channel layer, no rendering), timed
from the trigger's send to each receipt.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

from bench.common import BASE_DIR, Figure, fast_setup, latency_summary, make_users


class Clients:
    """The client process: start, wait for READY, ask it to wait for a seq, collect the records."""

    def __init__(self, ctx, url: str, headers: list[dict[str, str]], name: str, concurrency: int = 20) -> None:
        self.ctx = ctx
        self.headers_path = ctx.workdir / f"{name}-headers.json"
        self.out_path = ctx.workdir / f"{name}-out.json"
        self.headers_path.write_text(json.dumps(headers))
        self.stderr = open(ctx.workdir / f"{name}-clients.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.push_clients",
                url,
                str(self.headers_path),
                str(self.out_path),
                "--timeout",
                "600",
                "--connect-concurrency",
                str(concurrency),
            ],
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        line = self._line(timeout=600)
        words = line.split()
        if not words or words[0] != "READY":
            raise RuntimeError(f"push clients did not start: {line!r}")
        self.connected, self.failed, self.seconds = int(words[1]), int(words[2]), float(words[3])

    def _line(self, timeout: float) -> str:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError("push clients stopped answering")
        return self.proc.stdout.readline().strip()

    def wait_for(self, seq: int, timeout: float = 30) -> int:
        self.proc.stdin.write(f"wait {seq} {timeout}\n")
        self.proc.stdin.flush()
        words = self._line(timeout + 30).split()
        return int(words[2])

    def finish(self) -> list[list[list[float]]]:
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        self.proc.wait(120)
        self.stderr.close()
        return json.loads(self.out_path.read_text())


def latencies(records: list[list[list[float]]], commits: list[tuple[int, float]]) -> tuple[list[float], int, list[int]]:
    """Per (event, client): first receipt of a message with seq >= the event's, minus the commit time."""
    out: list[float] = []
    missed = 0
    sizes: list[int] = []
    for seq, committed in commits:
        for client in records:
            hit = next((r for r in client[1:] if r[0] >= seq), None)
            if hit is None:
                missed += 1
                continue
            out.append(hit[1] - committed)
            sizes.append(int(hit[2]))
    return out, missed, sizes


def commit_via_services(market, rng: random.Random) -> tuple[int, float]:
    from django.db import transaction

    from markets import services
    from markets.models import Session

    stamp: dict[str, float] = {}
    taker = rng.choice(market.traders)
    give, get = rng.sample(market.legs, 2)
    with transaction.atomic():
        services.request_rfq(taker, market.session_id, give, get, "1")
        transaction.on_commit(lambda: stamp.setdefault("t", time.time()))
    return Session.objects.get(id=market.session_id).last_seq, stamp["t"]


def run(ctx) -> list[Figure]:
    from django.conf import settings

    from bench.web import session_cookie
    from markets.tokens import create_token
    from sessionsite.testing import Server, free_port

    sizes = ctx.sizes
    market = ctx.markets[f"trade{sizes['trade_prior'][-1]}"]
    most = max(sizes["push_clients"])
    holders = [*market.traders, *market.makers, market.organiser]
    watchers = list(make_users([f"watcher{i:04d}" for i in range(max(0, most - len(holders)))]).values())
    viewers = (holders + watchers)[:most]
    ctx.log(f"push: signing in {len(viewers)} users")
    with fast_setup():
        cookies = [session_cookie(user) for user in viewers]
        _, token = create_token(market.traders[0], "bench-push")
    poll = str(settings.FEED_POLL_SECONDS)
    server = Server(ctx.workdir / "daphne-push.log", FEED_POLL_SECONDS=poll).start()
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(echo_port), "bench.echo_asgi:application"],
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=open(ctx.workdir / "daphne-echo.log", "wb"),
    )
    figures: list[Figure] = []
    rng = random.Random(11)
    try:
        _wait_port(echo_port)
        for n in sizes["push_clients"]:
            headers = [{"Cookie": c, "Origin": server.url} for c in cookies[:n]]
            url = f"ws://127.0.0.1:{server.port}/ws/sessions/{market.session_id}/"
            ctx.log(f"push: {n} clients connecting to the floor")
            clients = Clients(ctx, url, headers, f"push{n}")
            commits: list[tuple[int, float]] = []
            nudged: list[tuple[int, float]] = []
            try:
                for _ in range(sizes["push_events"]):
                    time.sleep(rng.uniform(0.05, 0.35))
                    seq, at = commit_via_services(market, rng)
                    commits.append((seq, at))
                    clients.wait_for(seq)
                if n == most:
                    for _ in range(sizes["push_events"]):
                        time.sleep(rng.uniform(0.05, 0.35))
                        seq, at = _commit_via_http(server.port, market, token, rng)
                        nudged.append((seq, at))
                        clients.wait_for(seq)
            finally:
                records = clients.finish()
            ours, missed, msg_sizes = latencies(records, commits)
            mean_size = int(sum(msg_sizes) / max(1, len(msg_sizes)))
            ctx.log(f"push: {n} clients, floor messages of {mean_size:,} bytes; echo limit")
            limit, limit_missed = _echo_limit(ctx, echo_port, n, mean_size, sizes["push_events"], rng)
            summary = latency_summary(ours or [0.0])
            limit_summary = latency_summary(limit or [0.0])
            detail = {
                "ours": summary | {"missed": missed, "connected": clients.connected, "failed": clients.failed},
                "limit": limit_summary | {"missed": limit_missed},
                "events": len(commits),
                "message_bytes": mean_size,
                "feed_poll_seconds": float(poll),
            }
            figures.append(
                Figure(
                    key=f"push.{n}",
                    section="Push over WebSockets",
                    name="commit -> receipt p99 (writer in another process, feed polls)",
                    size=f"{n} clients of one session, {len(commits)} events",
                    scale=f"{n} clients",
                    work=n,
                    value=summary["p99_ms"],
                    unit="ms p99",
                    limit=limit_summary["p99_ms"],
                    limit_name=f"bare ASGI broadcast of {mean_size:,} bytes to the same clients (p99)",
                    higher_is_better=False,
                    goal="p99 < 250 ms" if n >= 500 else "",
                    met=(summary["p99_ms"] < 250 and missed == 0) if n >= 500 else None,
                    detail=detail,
                )
            )
            if nudged:
                ours_n, missed_n, _ = latencies(records, nudged)
                s_n = latency_summary(ours_n or [0.0])
                figures.append(
                    Figure(
                        key=f"push.{n}.nudged",
                        section="Push over WebSockets",
                        name="request sent -> receipt p99 (writer in the web process, nudged)",
                        size=f"{n} clients of one session, {len(nudged)} events",
                        value=s_n["p99_ms"],
                        unit="ms p99",
                        limit=limit_summary["p99_ms"],
                        limit_name=f"bare ASGI broadcast of {mean_size:,} bytes to the same clients (p99)",
                        higher_is_better=False,
                        goal="p99 < 250 ms" if n >= 500 else "",
                        met=s_n["p99_ms"] < 250 and missed_n == 0 if n >= 500 else None,
                        detail=detail | {"ours": s_n | {"missed": missed_n}},
                    )
                )
        figures.append(_storm(ctx, server, echo_port, market, cookies[:most]))
    finally:
        server.stop()
        echo.terminate()
        echo.wait(10)
    return figures


def _storm(ctx, server, echo_port: int, market, cookies: list[str]) -> Figure:
    """Every client connecting at once, as after a restart: seconds until the last has its whole floor.
    The limit: the bare ASGI server greeting as many sockets, connecting at once, with as many bytes."""
    n = len(cookies)
    headers = [{"Cookie": c, "Origin": server.url} for c in cookies]
    url = f"ws://127.0.0.1:{server.port}/ws/sessions/{market.session_id}/"
    ctx.log(f"push: reconnect storm, {n} clients at once")
    storm = Clients(ctx, url, headers, f"storm{n}", concurrency=n)
    records = storm.finish()
    floor_bytes = max((client[0][2] for client in records if client), default=0)
    echo = Clients(ctx, f"ws://127.0.0.1:{echo_port}/?greet={floor_bytes}", [{} for _ in range(n)], "echo-storm", n)
    echo.finish()
    ctx.log(f"push: storm {storm.seconds:.2f} s ({storm.connected} floors), bare ASGI {echo.seconds:.2f} s")
    return Figure(
        key=f"push.storm.{n}",
        section="Push over WebSockets",
        name="reconnect storm: every socket connects at once -> the last has its whole floor",
        size=f"{n} clients of one session, floors of {floor_bytes:,} bytes",
        value=storm.seconds,
        unit="s",
        limit=echo.seconds,
        limit_name=f"bare ASGI server greeting {n} sockets connecting at once with {floor_bytes:,} bytes each",
        higher_is_better=False,
        goal="all within 3 s",
        met=storm.seconds < 3 and storm.connected == n and storm.failed == 0,
        detail={"connected": storm.connected, "failed": storm.failed, "limit_connected": echo.connected},
    )


def _commit_via_http(port: int, market, token: str, rng: random.Random) -> tuple[int, float]:
    import http.client

    from markets.models import Session

    give, get = rng.sample(market.legs, 2)
    body = json.dumps({"give_leg": give, "get_leg": get, "quantity": "1"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = time.time()
    conn.request(
        "POST",
        f"/api/v1/sessions/{market.session_id}/rfq",
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    text = response.read()
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"RFQ over HTTP failed: {response.status} {text[:200]!r}")
    return Session.objects.get(id=market.session_id).last_seq, sent


def _echo_limit(ctx, port: int, n: int, size: int, events: int, rng: random.Random) -> tuple[list[float], int]:
    from websockets.sync.client import connect

    clients = Clients(ctx, f"ws://127.0.0.1:{port}/", [{} for _ in range(n)], f"echo{n}")
    sends: list[tuple[int, float]] = []
    try:
        with connect(f"ws://127.0.0.1:{port}/", max_size=None) as trigger:
            trigger.recv()
            for seq in range(1, events + 1):
                time.sleep(rng.uniform(0.05, 0.35))
                at = time.time()
                trigger.send(f"broadcast:{seq}:{size}")
                sends.append((seq, at))
                clients.wait_for(seq)
    finally:
        records = clients.finish()
    got, missed, _ = latencies(records, sends)
    return got, missed


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")
