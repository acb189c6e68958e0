"""The results as a table (stdout and markdown) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import Figure

HEADERS = ["Figure", "Size", "Result", "Machine limit (same run)", "Ratio", "Goal", "Met"]


def _num(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:,.2f} s"
    if "ms" in unit:
        return f"{value:,.1f} {unit}"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def _extra(f: Figure) -> str:
    """Latency percentiles next to a rate, for the HTTP rows."""
    ours = f.detail.get("ours") if isinstance(f.detail, dict) else None
    if f.section.endswith("HTTP on daphne") and ours:
        return f" (p50 {ours['p50_ms']:.0f} / p95 {ours['p95_ms']:.0f} / p99 {ours['p99_ms']:.0f} ms)"
    if f.section.endswith("Push over WebSockets") and ours:
        return f" (p50 {ours['p50_ms']:.0f} ms)"
    return ""


def _limit_extra(f: Figure) -> str:
    if f.section.endswith("HTTP on daphne"):
        h = f.detail["health"]
        return f" (p50 {h['p50_ms']:.0f} / p95 {h['p95_ms']:.0f} / p99 {h['p99_ms']:.0f} ms)"
    if f.section.endswith("Push over WebSockets") and "limit" in f.detail:
        return f" (p50 {f.detail['limit']['p50_ms']:.0f} ms)"
    return ""


def rows(figures: list[Figure]) -> list[list[str]]:
    out = []
    for f in figures:
        unit = f.unit
        limit_unit = unit
        out.append(
            [
                f"{f.section}: {f.name}",
                f.size,
                _num(f.value, unit) + _extra(f),
                f"{_num(f.limit, limit_unit)}{_limit_extra(f)}: {f.limit_name}",
                f"{f.ratio:.2f}",
                f.goal or "-",
                {True: "yes", False: "NO", None: "-"}[f.met],
            ]
        )
    return out


def text_table(figures: list[Figure]) -> str:
    body = rows(figures)
    widths = [min(60, max(len(h), *(len(r[i]) for r in body))) if body else len(h) for i, h in enumerate(HEADERS)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for r in body:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in rows(figures):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def growth(figures: list[Figure]) -> list[dict[str, Any]]:
    """The same figure at growing sizes: how the cost of one unit of work changes from the smallest to the largest.

    For a rate (events/s, trades/s, req/s) the cost of one unit is 1/rate; for a latency it is the latency.
    A factor near 1 means the total cost grows linearly with the work; below 1 it grows slower.
    """
    families: dict[str, list[Figure]] = {}
    for f in figures:
        family = f.key.rsplit(".", 1)[0] if f.key.rsplit(".", 1)[-1].isdigit() else None
        if family and not f.key.endswith("nudged"):
            families.setdefault(family, []).append(f)
    out = []
    for family, members in families.items():
        if len(members) < 2:
            continue
        first, last = members[0], members[-1]
        if first.higher_is_better:
            unit_cost = first.value / last.value
        elif first.work and last.work:
            unit_cost = (last.value / last.work) / (first.value / first.work)
        else:
            unit_cost = last.value / first.value
        out.append(
            {
                "family": family,
                "name": f"{first.section}: {first.name}",
                "sizes": [m.scale or m.size.split(",")[0] for m in members],
                "values": [m.value for m in members],
                "unit": first.unit,
                "unit_cost_factor": unit_cost,
            }
        )
    return out


def goals_markdown(figures: list[Figure]) -> str:
    with_goal = [f for f in figures if f.goal]
    if not with_goal:
        return ""
    lines = ["## Goals", ""]
    for f in with_goal:
        verdict = "met" if f.met else "**not met**"
        lines.append(
            f"- {f.section}, {f.name} ({f.size}): goal {f.goal}; {_num(f.value, f.unit)}, ratio {f.ratio:.2f}: {verdict}."
        )
    return "\n".join([*lines, ""])


def figures_from_json(result: dict[str, Any]) -> list[Figure]:
    """Figures back from a results file, to render the page again without measuring."""
    out = []
    for item in result["figures"]:
        fields = {k: v for k, v in item.items() if k != "ratio"}
        out.append(Figure(**fields))
    return out


def request_cost_markdown(figures: list[Figure]) -> str:
    """The web process's CPU per request for each HTTP row and for /health: where a request's time goes,
    and so how far a ratio to /health can rise (a page's own work is what it costs beyond /health's)."""
    rows, health = [], None
    for f in figures:
        ours = f.detail.get("ours", {}) if "HTTP on daphne" in f.section else {}
        if "server_cpu_ms" in ours:
            health = f.detail["health"].get("server_cpu_ms", health)
            rows.append(f"| {f.name} | {f.size} | {ours['server_cpu_ms']:.2f} ms |")
    if not rows or health is None:
        return ""
    return "\n".join(
        [
            "## What one request costs the server",
            "",
            "The daphne process's CPU time (user + system, from /proc) over each HTTP row's requests, per request.",
            "With the server's cores busy, a row's requests per second is about the inverse of this, so its",
            "ratio to `/health` is about /health's cost over the row's.",
            "",
            "| Request | Size | Server CPU per request |",
            "|---|---|---|",
            f"| GET /health (SELECT 1) | the limit of the rows below | {health:.2f} ms |",
            *rows,
            "",
        ]
    )


def growth_markdown(figures: list[Figure]) -> str:
    rows_ = growth(figures)
    if not rows_:
        return ""
    lines = [
        "## Growth",
        "",
        "The same figure at 1x, 10x and 100x the work. *Cost of one unit, largest vs smallest* is the time one",
        "event, trade or request takes at the largest size divided by the time it takes at the smallest (for the",
        "push, the p99 latency per client reached). 1.0 means the total cost grows linearly with the work; below",
        "1.0 it grows slower than the work, above 1.0 faster.",
        "",
        "| Figure | Results, smallest to largest | Cost of one unit, largest vs smallest |",
        "|---|---|---|",
    ]
    for g in rows_:
        values = " → ".join(f"{_num(v, g['unit'])} ({size})" for v, size in zip(g["values"], g["sizes"], strict=True))
        lines.append(f"| {g['name']} | {values} | {g['unit_cost_factor']:.2f}x |")
    return "\n".join([*lines, ""])


def _clearing(notes: dict[str, Any]) -> str:
    if "clearing" not in notes:
        return ""
    from bench import batches

    return batches.markdown(notes["clearing"])


def _margin(notes: dict[str, Any]) -> str:
    from bench import margin

    return margin.markdown(notes.get("margin", []))


def _fixing(notes: dict[str, Any]) -> str:
    from bench import fixing

    return fixing.markdown(notes.get("fixing", []))


def markdown(result: dict[str, Any], figures: list[Figure]) -> str:
    m = result["machine"]
    notes = result.get("notes", {})
    cost_lines = []
    for item in notes.get("full_vs_normal", []):
        cost_lines.append(
            f"| {item['path']} | {item['prior_trades']:,} | {item['full_per_s']:,.0f} | {item['normal_per_s']:,.0f} "
            f"| {item['full_cost'] * 100:.0f}% |"
        )
    cost = ""
    if cost_lines:
        cost = "\n".join(
            [
                "## What synchronous=FULL costs",
                "",
                "The ledger connects with `PRAGMA synchronous=FULL` (sessionsite/config.py): SQLite syncs the WAL on",
                "every commit, so an acknowledged trade survives a power cut. NORMAL syncs only at checkpoints: it",
                "survives a crash of the process but may lose the last commits on power loss. Trades per second:",
                "",
                "| path | trades in session | FULL | NORMAL | FULL is slower by |",
                "|---|---|---|---|---|",
                *cost_lines,
                "",
                f"One accept through the services sends {notes.get('statements_per_accept', '?')} SQL statements "
                "(the raw loop: 9), so the fsync that FULL adds is a smaller share of its time.",
                "",
            ]
        )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by the benchmark command; do not edit by hand. Re-run it to refresh this page:",
            "",
            "```",
            result["command"],
            "```",
            "",
            f"Run at {result['finished_at']} in {result['seconds']:.0f} s"
            f"{' (quick sizes)' if result['quick'] else ''}. Machine: {m['cpu']}, {m['cores']} cores, "
            f"Python {m['python']}, SQLite {m['sqlite']}, Django {m['django']}, numpy {m['numpy']}, "
            f"{m['platform']}. Load average when it started: {m['load_average_at_start']} "
            "(the machine is shared: other work running at the same time slows the figures and their limits alike).",
            "",
            "Every figure stands beside the machine's own limit for the same work, measured in the same run, and",
            "their ratio: how much of the limit we reach (result/limit for rates, limit/result for latencies;",
            "1.00 would be as fast as the machine allows). Full numbers are in `bench/results/latest.json`.",
            "",
            markdown_table(figures),
            "",
            goals_markdown(figures),
            request_cost_markdown(figures),
            growth_markdown(figures),
            cost,
            _clearing(notes),
            _margin(notes),
            _fixing(notes),
            "## How each figure is measured",
            "",
            *[f"- **{title}.** {text}" for title, text in EXPLAINED],
            "",
        ]
    )


EXPLAINED = [
    (
        "Trade path",
        "Sessions of 50 participants and 8 legs already holding N trades (loaded in bulk from a generated log, "
        "`bench/loader.py`) take more accepts through `markets.services.accept_quote`, each its own "
        "transaction as a request makes it; only the accepts are timed, their RFQs and quotes are made "
        "before. The limit is a raw `sqlite3` loop doing the same transaction shape on a file with the same "
        "PRAGMAs (WAL, the same `synchronous`) and as many events in its log: BEGIN IMMEDIATE; read the "
        "stream head and the two inventories; 4 holding updates; 1 event insert hashed with sha256; COMMIT.",
    ),
    (
        "HTTP",
        "One daphne process started as users start it (`sessionsite.testing.Server`), clients are threads "
        "with keep-alive `http.client` connections sending a bounded number of requests one after another. "
        "The limit is `GET /health` (a Django view doing `SELECT 1`) on the same server with the same clients. "
        "The accept requests all write, so SQLite serialises them whatever the number of clients. What "
        "`/health` costs is what the server spends on any request (Twisted, daphne, the ASGI handler, about "
        "0.8 ms of CPU) plus a view doing almost nothing: a ratio says how much a page's or a command's own "
        "work adds to that.",
    ),
    (
        "Replay",
        "Logs of 10 interleaved sessions (RFQs, quotes, trades-heavy, and batch cycles: limit orders and the "
        "cuts that clear them, see `bench/eventlog.py`) written into copies of the migrated schema; "
        "`markets.fastreplay.replay_log` rebuilds every session's holdings (checked against the generator's own "
        "bookkeeping, and in the tests against `projections.rebuild`). Only SessionCreated, "
        "InitialAllocationAssigned, TradeExecuted, BatchCleared and AutoDeleveraged touch holdings, so only those rows are read "
        "(the trades and cuts through the type index); the limit is the same SQL reading the same rows with no "
        "work. Best of repeated runs, each on a fresh connection.",
    ),
    (
        "Verify",
        "`ledger.sqlite.verify_log_raw`: one pass over the table in seq order, every stream's chain checked "
        "(same result as `ledger.store.verify_chain` stream by stream, tested on good and tampered logs); "
        "from 100,000 events per core the seq range is cut in one part per core, checked by as many "
        "processes and joined stream by stream. The limit is `hashlib.sha256` over the exact bytes it "
        "hashes, already in memory, on one core.",
    ),
    (
        "Batch auction cut",
        "A batch session (50 holders) loaded in bulk with N resting orders over L legs (`bench/batches.py`, "
        "the books of `bench/clearing.py`: limits within 10% of the reference rate, each order good for one "
        "batch), then one `services.clear_batch` by its organiser on the bench's SQLite file (synchronous=FULL): "
        "the book read under the session's lock, the oracle's prices at the cut, the clearing and its exact "
        "check, the BatchCleared event, the projection (orders aged, fills, holdings and reservations), the "
        "invariants, the commit. The limit is the same clearing in memory (`markets.domain.batch.clear` on the "
        "book the service reads) plus the same rows written by plain sqlite3 in one transaction on a copy of "
        "the database (the event, one update per order, one insert per fill, one update per holding moved).",
    ),
    (
        "Margin",
        "Two sessions of 50 participants and 8 legs loaded in bulk from generated logs of the same size, one "
        "allowing bounded shorting (its log holds a short squeeze); the oracle ticks every leg of both; untimed, "
        "each trader of the shorting session sells a leg short (`bench/margin.py`). Then the same number of "
        "accepts through `services.accept_quote` in each, in alternating rounds: every accept in the shorting "
        "session checks the short limits, the pool's gross cap and the taker's worst case over the box at the "
        "oracle's latest prices. The limit is the session without shorting: the ratio is what margin leaves "
        "of its rate (goal: at least 0.90, margin costs at most 10%).",
    ),
    (
        "Fixing",
        "N ticks of one leg (a seeded walk, one every 80 ms, each with a volume) written in bulk into the SQLite "
        "file, all inside a day's window (`bench/fixing.py`). Timed: `oracle.fixing.take_fixing` as the "
        "settlement calls it, by VWAP over the window, and by a ladder whose VWAP tier is refused for volume and "
        "whose TWAP tier answers (the exact integers and the whole per-leg record). The limit is a bare pass over "
        "the same rows: sqlite3 reads (at, price, volume) of the window and numpy reduces them in float64. Best "
        "of 3 alternating rounds; the goal: within 3x (ratio at least 0.33).",
    ),
    (
        "Push",
        "N clients (one asyncio process, `bench/push_clients.py`) signed in with their own session cookies "
        "on `/ws/sessions/<id>/` of the 10,000-trade session; the writer (this process) commits one "
        "RFQRequested through the services and stamps the commit in an on_commit hook; each client stamps "
        "receipt; the next event waits until every client has this one. Daphne's ledger feed sees the "
        "commit by watching the SQLite write-ahead log (its stat and its index header every 10 ms; it also polls every "
        "FEED_POLL_SECONDS). Only the rows the event changed are pushed (the new RFQ on the board, the log's "
        "new row, the status line), the RFQ rendered once per way of standing to it, and each text framed once "
        "for every socket sent it. The limit is a bare ASGI broadcast (`bench/echo_asgi.py`, its own daphne) "
        "of a message of the same size to the same number of clients.",
    ),
]
