"""HTTP on daphne: the JSON accept endpoint and the floor page, against `/health` (a trivial Django view
doing SELECT 1) on the same server, with the same clients, measured in the same run.

One daphne process (`sessionsite.testing.Server`, as users start it) on the bench database. Clients are
threads in this process, each with its own keep-alive `http.client` connection, each sending its share of
a bounded number of requests one after another. Reported: requests/s over the wall time, and the
latency percentiles of single requests.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Figure, Stopwatch, fast_setup, latency_summary
from bench.ticks import load_ticks


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(
    port: int, plans: list[list[tuple[str, str, dict[str, str]]]], expect: int, server_pid: int | None = None
) -> dict[str, Any]:
    """Each plan is one client's list of (method, path, headers), sent in order on one connection. With
    `server_pid`, also the server process's CPU per request (`server_cpu_ms`): where a request's time goes."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(plans) + 1)

    def client(plan: list[tuple[str, str, dict[str, str]]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        bad: list[str] = []
        start.wait()
        for method, path, headers in plan:
            began = time.perf_counter()
            try:
                conn.request(method, path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                bad.append(f"{method} {path}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine.append(time.perf_counter() - began)
            if response.status != expect:
                bad.append(f"{method} {path}: {response.status} {body[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(plan,), daemon=True) for plan in plans]
    for thread in threads:
        thread.start()
    cpu_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    start.wait()
    with Stopwatch() as watch:
        for thread in threads:
            thread.join()
    requests = sum(len(plan) for plan in plans)
    cpu = {"server_cpu_ms": 1000 * (process_cpu_seconds(server_pid) - cpu_before) / requests} if server_pid else {}
    return {
        **cpu,
        "requests": requests,
        "clients": len(plans),
        "seconds": watch.seconds,
        "per_s": requests / watch.seconds,
        "errors": len(errors),
        "first_errors": errors[:3],
        **latency_summary(latencies or [0.0]),
    }


def same_for_all(clients: int, total: int, make: Callable[[int, int], tuple[str, str, dict[str, str]]]):
    """`total` requests split over `clients`; make(client, i) gives the i-th request of a client."""
    per = max(1, total // clients)
    return [[make(c, i) for i in range(per)] for c in range(clients)]


def session_cookie(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _http_figure(
    key: str, name: str, size: str, ours: dict, health: dict, scale: str = "", goal: float | None = None
) -> Figure:
    """A rate beside /health's; `goal` is the least ratio to it that meets the goal (none: no goal)."""
    return Figure(
        key=key,
        section="HTTP on daphne",
        name=name,
        size=size,
        scale=scale,
        value=ours["per_s"],
        unit="req/s",
        limit=health["per_s"],
        limit_name=f"GET /health (SELECT 1), {health['clients']} clients",
        goal=f">= {goal} of /health" if goal else "",
        met=(ours["per_s"] >= goal * health["per_s"] and ours["errors"] == 0) if goal else None,
        detail={"ours": ours, "health": health},
    )


def _one_client_figure(key: str, size: str, ours: dict, health: dict) -> Figure:
    """One client's floor pages one after another: p95 beside /health's p95 for one client."""
    return Figure(
        key=key,
        section="HTTP on daphne",
        name="GET /sessions/<id>/ (floor page), one client: p95",
        size=size,
        value=ours["p95_ms"],
        unit="ms p95",
        limit=health["p95_ms"],
        limit_name="GET /health (SELECT 1), one client (p95)",
        higher_is_better=False,
        goal="p95 < 50 ms",
        met=ours["p95_ms"] < 50 and ours["errors"] == 0,
        detail={"ours": ours, "health": health},
    )


def run(ctx) -> list[Figure]:
    from django.conf import settings

    from markets.tokens import create_token
    from sessionsite.testing import Server

    sizes = ctx.sizes
    clients = sizes["http_clients"]
    markets = [ctx.markets[f"trade{prior}"] for prior in sizes["trade_prior"]]
    biggest = markets[-1]
    cookie = session_cookie(biggest.traders[0])
    server = Server(ctx.workdir / "daphne-http.log", FEED_POLL_SECONDS=str(settings.FEED_POLL_SECONDS))
    ctx.log(f"http: daphne on port {server.port}")
    server.start()
    figures: list[Figure] = []
    try:
        warm = same_for_all(1, 20, lambda c, i: ("GET", "/health", {}))
        drive(server.port, warm, 200)
        health = drive(
            server.port,
            same_for_all(clients, sizes["http_health"], lambda c, i: ("GET", "/health", {})),
            200,
            server.proc.pid,
        )
        ctx.log(f"http: /health {health['per_s']:.0f} req/s")
        health_one = drive(server.port, same_for_all(1, sizes["http_floor"], lambda c, i: ("GET", "/health", {})), 200)
        for market, prior in zip(markets, sizes["trade_prior"], strict=True):
            path = f"/sessions/{market.session_id}/"
            headers = {"Cookie": cookie}
            # An hour of prices (ten minutes in a quick run): the cards and the chart draw them.
            ticks = load_ticks(market.session_id, seconds=600 if ctx.quick else 3_600)
            ctx.log(f"http: {ticks:,} ticks loaded for {market.session_id}")
            drive(server.port, same_for_all(1, 2, lambda c, i, p=path, h=headers: ("GET", p, h)), 200)
            floor = drive(
                server.port,
                same_for_all(clients, sizes["http_floor"], lambda c, i, p=path, h=headers: ("GET", p, h)),
                200,
                server.proc.pid,
            )
            ctx.log(f"http: floor page with {prior:,} trades: {floor['per_s']:.1f} req/s")
            trades = _trades(market.session_id)
            figures.append(
                _http_figure(
                    f"http.floor.{prior}",
                    "GET /sessions/<id>/ (floor page, signed in)",
                    f"50 participants, 8 legs, {trades:,} trades, {ticks:,} ticks; {clients} clients",
                    floor,
                    health,
                    scale=f"{trades:,} trades",
                    goal=0.5 if market is biggest else None,
                )
            )
            if market is biggest:
                one = drive(
                    server.port,
                    same_for_all(1, sizes["http_floor"], lambda c, i, p=path, h=headers: ("GET", p, h)),
                    200,
                )
                ctx.log(f"http: floor page, one client: p95 {one['p95_ms']:.1f} ms")
                figures.append(
                    _one_client_figure(
                        "http.floor.one",
                        f"50 participants, 8 legs, {trades:,} trades, {ticks:,} ticks",
                        one,
                        health_one,
                    )
                )
        # Quotes for the HTTP accepts, one taker per client, made now (not timed): made before the floor
        # pages, their open RFQs would have been on the board the floor renders.
        per_client = max(1, sizes["http_accepts"] // clients)
        with fast_setup():
            plans_accept = []
            for taker in biggest.traders[:clients]:
                _, raw = create_token(taker, "bench")
                auth = {"Authorization": f"Bearer {raw}", "Content-Length": "0"}
                quotes = [biggest.rfq_and_quote(taker=taker)[1] for _ in range(per_client)]
                plans_accept.append([("POST", f"/api/v1/quotes/{q.id}/accept", auth) for q in quotes])
        accept_size = f"{_trades(biggest.session_id):,} trades in session; {clients} clients"
        accept = drive(server.port, plans_accept, 201, server.proc.pid)
        ctx.log(f"http: accept {accept['per_s']:.1f} req/s, errors {accept['errors']}")
        figures.insert(
            0,
            _http_figure(
                "http.accept",
                "POST /api/v1/quotes/{id}/accept (Bearer token)",
                accept_size,
                accept,
                health,
                goal=0.6,
            ),
        )
    finally:
        server.stop()
    return figures


def _trades(session_id: str) -> int:
    from markets.models import Trade

    return Trade.objects.filter(session_id=session_id).count()
