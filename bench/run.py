"""The benchmark command.

    .venv/bin/python -m bench            # full sizes: writes bench/results/latest.json and docs/benchmarks.md
    .venv/bin/python -m bench --quick    # small sizes, a minute or less: bench/results/quick.json and quick.md
    .venv/bin/python -m bench --only replay trade --json out.json --markdown out.md
    .venv/bin/python -m bench --only clearing   # a batch auction's cut through services.clear_batch
    .venv/bin/python -m bench --only margin     # accepts with shorting on beside off (margin's cost)
    .venv/bin/python -m bench --only fixing     # a fixing over 1,000,000 ticks beside sqlite3 + numpy

Everything runs on scratch SQLite files in a temporary folder (or --workdir, which is kept and lets the
generated logs be reused): the project's own database is never touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import BASE_DIR

SECTIONS = (
    "replay",
    "trade",
    "http",
    "push",
    "clearing",
    "margin",
    "fixing",
    "scale",
)  # scale only when named (--only scale)

FULL = {
    "replay_events": [10_000, 100_000, 1_000_000],
    "repeats": 2,
    "trade_prior": [100, 1_000, 10_000],
    "accepts": 200,
    "raw_trades": 1_000,
    "http_clients": 8,
    "http_health": 1_000,
    "http_floor": 480,  # about as long a run as /health's 1,000, so the ratio compares like with like
    "http_accepts": 400,
    "push_clients": [5, 50, 500],
    "push_events": 10,
    "clearing": [[legs, n] for legs in (4, 8, 32) for n in (100, 1_000, 10_000)],  # [legs, resting orders]
    "margin_prior": 1_000,
    "margin_accepts": 400,
    "fixing_ticks": 1_000_000,
}

QUICK = {
    "replay_events": [2_000, 20_000],
    "repeats": 1,
    "trade_prior": [10, 100],
    "accepts": 15,
    "raw_trades": 100,
    "http_clients": 4,
    "http_health": 100,
    "http_floor": 12,
    "http_accepts": 24,
    "push_clients": [5, 20],
    "push_events": 3,
    "clearing": [[4, 100], [8, 1_000]],
    "margin_prior": 100,
    "margin_accepts": 40,
    "fixing_ticks": 20_000,
}


@dataclass
class Context:
    workdir: Path
    schema: Path
    sizes: dict[str, Any]
    quick: bool
    markets: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)


def render(results: Path, md_path: Path) -> int:
    """Write the page from stored results (after a change to the page's text, not to the measurements)."""
    import json

    from bench import report

    result = json.loads(results.read_text())
    figures = report.figures_from_json(result)
    print(report.text_table(figures))
    if result.get("sections") == ["postgres"]:
        from bench import postgres

        md_path.write_text(postgres.page(result, figures))
    else:
        md_path.write_text(report.markdown(result, figures))
    print(f"\nwrote {md_path}")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute or less)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--markdown", type=Path, help="where to write the markdown page")
    parser.add_argument("--workdir", type=Path, help="keep scratch files here (reuses generated logs)")
    parser.add_argument(
        "--replay-events", type=int, nargs="+", help="log sizes for replay/verify (default 10k 100k 1M)"
    )
    parser.add_argument("--trade-prior", type=int, nargs="+", help="trades already in the session (100 1000 10000)")
    parser.add_argument("--push-clients", type=int, nargs="+", help="WebSocket clients (5 50 500)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the PostgreSQL figures instead (bench/postgres.py), in a scratch database made with this URL's role",
    )
    parser.add_argument(
        "--render", type=Path, metavar="RESULTS_JSON", help="only write the markdown page again from a results file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        default = "benchmarks-postgres.md" if args.postgres else "benchmarks.md"
        return render(args.render, args.markdown or BASE_DIR / "docs" / default)
    if args.postgres:
        return run_postgres(args)
    sizes = dict(QUICK if args.quick else FULL)
    for name in ("replay_events", "trade_prior", "push_clients"):
        if getattr(args, name):
            sizes[name] = sorted(getattr(args, name))
    sections = [s for s in SECTIONS if (s in args.only if args.only else s != "scale")]
    needs_trade = [s for s in ("http", "push", "scale") if s in sections]
    if needs_trade and "trade" not in sections:
        sections.insert(sections.index(needs_trade[0]), "trade")  # they use its sessions and its raw loop
    results_dir = BASE_DIR / "bench" / "results"
    json_path = args.json or results_dir / ("quick.json" if args.quick else "latest.json")
    md_path = args.markdown or (results_dir / "quick.md" if args.quick else BASE_DIR / "docs" / "benchmarks.md")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started_at = dt.datetime.now(dt.UTC)
    try:
        from bench.common import machine_info, setup_django

        machine = machine_info()
        schema = setup_django(workdir)
        ctx = Context(workdir=workdir, schema=schema, sizes=sizes, quick=args.quick)
        ctx.log(f"scratch folder {workdir}; sections {', '.join(sections)}")
        from bench import batches, fixing, margin, push, replay, scale, trade, web

        modules = {
            "replay": replay,
            "trade": trade,
            "http": web,
            "push": push,
            "clearing": batches,
            "margin": margin,
            "fixing": fixing,
            "scale": scale,
        }
        figures = []
        for name in sections:
            figures.extend(modules[name].run(ctx))
        from bench import report

        command = "python -m bench" + (
            "" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(argv or sys.argv[1:])
        )
        result = {
            "command": command.strip(),
            "quick": args.quick,
            "sections": sections,
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": time.monotonic() - ctx.started,
            "machine": machine,
            "sizes": sizes,
            "figures": [f.as_json() for f in figures],
            "notes": ctx.notes,
        }
        print(report.text_table(figures))
        report.write_json(json_path, result)
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(report.markdown(result, figures))
        print(f"\nwrote {json_path} and {md_path}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_postgres(args: argparse.Namespace) -> int:
    """The PostgreSQL figures (bench/postgres.py) in a scratch database, beside the same machine's limits."""
    from bench import postgres, report, scale
    from bench.common import machine_info

    results_dir = BASE_DIR / "bench" / "results"
    json_path = args.json or results_dir / ("postgres-quick.json" if args.quick else "postgres.json")
    md_path = args.markdown or (
        results_dir / "postgres-quick.md" if args.quick else BASE_DIR / "docs" / "benchmarks-postgres.md"
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sc-bench-pg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started_at = dt.datetime.now(dt.UTC)
    url = postgres.setup_django(args.postgres)
    try:
        ctx = Context(workdir=workdir, schema=workdir, sizes={}, quick=args.quick)
        ctx.log(f"scratch database {url.rsplit('/', 1)[-1]}, scratch folder {workdir}")
        figures = postgres.run(ctx)
        result = {
            "command": "python -m bench --postgres URL" + (" --quick" if args.quick else ""),
            "quick": args.quick,
            "sections": ["postgres"],
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": time.monotonic() - ctx.started,
            "machine": machine_info() | {"postgresql": postgres.server_version()},
            "sizes": (postgres.QUICK | scale.QUICK) if args.quick else (postgres.FULL | scale.FULL),
            "figures": [f.as_json() for f in figures],
            "notes": {},
        }
        print(report.text_table(figures))
        report.write_json(json_path, result)
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(postgres.page(result, figures))
        print(f"\nwrote {json_path} and {md_path}")
    finally:
        postgres.teardown(url)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
