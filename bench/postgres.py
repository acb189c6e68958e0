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

Floor and pushes: the SQLite page's HTTP and push rows (the floor page with 8 clients and with one, the
accept over HTTP, 500 sockets, the reconnect storm), the same code on PostgreSQL (full runs only).

Scale: bench/scale.py, on PostgreSQL (the same figures on SQLite: `python -m bench --only scale`).
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import BASE_DIR, Figure, Stopwatch, create_market, fast_setup

FULL = {"prior": 200, "accepts": 200, "raw": 1_000}
QUICK = {"prior": 10, "accepts": 20, "raw": 50}


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


def floor_and_push(ctx) -> list[Figure]:
    """The SQLite page's HTTP and push rows (bench/web.py, bench/push.py: the floor page, one client's
    p95, the accept over HTTP, pushes to 500 sockets, the reconnect storm), run the same way on
    PostgreSQL: a session of 50 participants and 8 legs loaded with 10,000 trades."""
    from bench import push, run, web
    from bench.trade import load_session

    prior = 10_000
    ctx.sizes = dict(run.FULL) | {"trade_prior": [prior]}
    ctx.sizes["push_clients"] = [max(ctx.sizes["push_clients"])]
    ctx.log(f"postgres: loading a session with {prior:,} trades for the floor and the pushes")
    market, _ = load_session(f"pgfloor{prior}-", prior, seed=21)
    ctx.markets[f"trade{prior}"] = market
    figures = [*web.run(ctx), *push.run(ctx)]
    for figure in figures:
        figure.key = f"pg.{figure.key}"
        figure.section = f"PostgreSQL, {figure.section}"
    return figures


def run(ctx) -> list[Figure]:
    from bench import scale

    sizes = QUICK if ctx.quick else FULL
    figure, _, limit = trade_path(ctx, sizes)
    floor = [] if ctx.quick else floor_and_push(ctx)  # the quick run (a test) keeps to trades and scale
    return [figure, *floor, *scale.run_all(ctx, scale.QUICK if ctx.quick else scale.FULL, limit, "postgresql")]


LIMITS = """\
The trade path spends its time in round trips, each a wait for a database process to be scheduled on a
busy machine (about 0.3-0.6 ms here). Since this stop a projection of plain statements sends its writes
and the session's stamp in one round trip (psycopg's pipeline mode, `markets.sql.pipelined`): an accept
waits for ten answers while it holds the session's lock instead of fourteen (the lock, the quote with its
RFQ and parties, the two holdings, the trade id, the stream's head, the event, the participants, the
pipelined writes, the invariants' aggregate, COMMIT), and the trade path went from 182 to 216 trades/s.
The raw loop itself varies from run to run with the disk's fsync (238-581 trades/s across runs). The
reads before the writes could be pipelined the same way (they would need the holdings read by the quote's
id rather than by the rows the first read names), which would leave about six.

The HTTP rows are below their goals on both engines, and further than before: a request's signals,
middleware and view now run in one hop on the process's threads, which halved what every request costs
daphne (GET /health from about 2.2 to 1 ms of CPU), so the limit they are divided by doubled while the
floor page and the accept gained less in proportion. The accept's view would have to fit in about 0.9 ms
for 0.6; the command alone takes longer than that on either engine.

Under 16 writers the two cores are shared by the daphnes, the 500 clients, the writers and the database,
and no core is idle. The writers are a closed loop (each sends its next request as soon as the last is
answered), so what the pushes save goes into more trades as well as into latency. A busy session is
pushed at most ten times a second per process (FEED_PUSH_GAP_SECONDS), everything committed meanwhile in
one push; a follower with no gap reads in one statement, a NOTIFY reads only the table it names, and a
push reads the session's participants once. Left: each process still renders every batch for its own
sockets (3-7 ms a batch), and a render is about eight statements on PostgreSQL; rendering once for every
process would be next."""


SQLITE_RESULTS = BASE_DIR / "bench" / "results" / "scale-sqlite.json"


def sqlite_figures() -> list[Figure]:
    """The trade path (synchronous=FULL) and scale rows of the last SQLite scale run, if there is one."""
    import json as json_

    from bench import report

    if not SQLITE_RESULTS.exists():
        return []
    figures = report.figures_from_json(json_.loads(SQLITE_RESULTS.read_text()))
    return [f for f in figures if f.key.startswith(("scale.", "trade.services.full."))]


def page(result: dict[str, Any], figures: list[Figure]) -> str:
    """docs/benchmarks-postgres.md: the table, the machine and what each figure means."""
    from bench import report

    m = result["machine"]
    from bench import scale

    doc = (__doc__ or "").split("\n\n", 1)[1].strip() + "\n\n" + (scale.__doc__ or "").strip()
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
        report.request_cost_markdown(figures),
        "## What is measured",
        "",
        doc.strip(),
        "",
    ]
    beside = sqlite_figures()
    if beside:
        lines += [
            "## The same figures on SQLite",
            "",
            f"From `{SQLITE_RESULTS.relative_to(BASE_DIR)}` (`python -m bench --only scale --json "
            f"{SQLITE_RESULTS.relative_to(BASE_DIR)} --markdown bench/results/scale-sqlite.md`), same machine:",
            "",
            report.markdown_table(beside),
            "",
        ]
    lines += ["## Where the limit is", "", LIMITS, "", "## Per run", ""]
    for f in [*figures, *beside]:
        if f.key.split(".")[-2] == "scale":
            d, engine = f.detail, "PostgreSQL" if f.key.startswith("pg.") else "SQLite"
            lines.append(
                f"- {engine}, {f.scale}: {d['trades']} trades ({d['trades_per_s']:.1f}/s), {d['events']} events; "
                f"push p50 {d['ours']['p50_ms']:.0f} ms, p99 {d['ours']['p99_ms']:.0f} ms, max "
                f"{d['ours']['max_ms']:.0f} ms; {d['lost']} lost, {d['busy']} busy, {d['refused']} refused in all, "
                f"{d['missed_by_sockets']} (event, socket) pairs never reached; floor message "
                f"{d['message_bytes']:,} bytes."
            )
    return "\n".join(lines) + "\n"
