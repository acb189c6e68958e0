"""Replay and verify: a generated log rebuilt into holdings (markets.fastreplay) and hash-verified
(ledger.sqlite), in events per second, beside what the machine does with the same data and nothing else.

Logs of 10 interleaved sessions (50 participants, 8 legs; see bench/eventlog.py) are written with
executemany into copies of the project's migrated schema (triggers kept: they only refuse UPDATE and
DELETE). Every measurement opens a fresh connection (SQLite's own cache cold, the OS cache warm) and is
the best of `repeats` runs, the limits included.

- replay limit: the same two queries (`markets.sql.HEADS_SQL`, `TRADES_SQL`) reading the same rows, no work;
- verify limit: hashlib.sha256 over the exact bytes the verifier hashes, prepared in memory beforehand.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from bench.common import Figure, Stopwatch, copy_db
from bench.eventlog import INSERT_SQL, GeneratedLog

SESSIONS = 10
PARTICIPANTS = 50
LEGS = 8
SEED = 5
GENERATOR_VERSION = 3  # 3: sessions trade by batch auction too
HASH_SAMPLE = 200_000


def build_log(ctx, n: int) -> tuple[Path, dict]:
    """The scratch database for `n` events and what replaying it must give (reused from --workdir)."""
    stem = f"events-{n}-s{SEED}-g{GENERATOR_VERSION}"
    path = ctx.workdir / f"{stem}.sqlite3"
    meta_path = ctx.workdir / f"{stem}.json"
    if path.exists() and meta_path.exists():
        ctx.log(f"replay: reusing {path.name}")
        return path, json.loads(meta_path.read_text())
    ctx.log(f"replay: generating {n:,} events")
    copy_db(ctx.schema, path)
    log = GeneratedLog(n, SESSIONS, PARTICIPANTS, LEGS, SEED, settle=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    with Stopwatch() as watch:
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQL, log.rows())
        conn.execute("COMMIT")
    conn.close()
    meta = {"holdings": log.holdings, "counts": log.counts, "streams": log.streams, "seconds": watch.seconds}
    meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())  # the same shape whether generated now or reused
    ctx.log(f"replay: wrote {n:,} events in {watch.seconds:.1f}s ({path.stat().st_size / 2**20:.0f} MiB)")
    return path, meta


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        with Stopwatch() as watch:
            result = fn()
        best = min(best, watch.seconds)
    return best, result


def run(ctx) -> list[Figure]:
    from ledger import sqlite as fast
    from markets import fastreplay
    from markets import sql as market_sql

    figures: list[Figure] = []
    for n in ctx.sizes["replay_events"]:
        repeats = ctx.sizes["repeats"] + (1 if n < 1_000_000 else 0)  # small runs are cheap: one more try
        spec_size = n >= 1_000_000  # the goals are set for a million events
        path, meta = build_log(ctx, n)
        streams = meta["streams"]

        def replay(path=path):
            return fastreplay.replay_log(path)

        def read_only(path=path):
            with fast.connect(path) as conn:
                rows = 0
                for sql in (market_sql.HEADS_SQL, market_sql.TRADES_SQL):
                    for _ in conn.execute(sql):
                        rows += 1
                return rows

        def verify(path=path):
            return fast.verify_log_raw(path)

        ctx.log(f"replay: {n:,} events")
        seconds, holdings = best_of(repeats, replay)
        wrong = [s for s in streams if _by_text(holdings[s].as_dict()) != meta["holdings"][s]] + sorted(
            set(holdings) - set(streams)
        )
        if wrong:
            raise AssertionError(f"fast replay disagrees with the generator on {wrong[:3]}")
        read_seconds, rows_read = best_of(repeats, read_only)
        figures.append(
            Figure(
                key=f"replay.{n}",
                section="Replay and verify",
                name="replay into holdings (markets.fastreplay.replay_log)",
                size=f"{n:,} events, {len(streams)} sessions",
                scale=f"{n:,} events",
                value=n / seconds,
                unit="events/s",
                limit=n / read_seconds,
                limit_name="raw sqlite3 read of the same rows, no work",
                goal=">= 500,000 events/s" if spec_size else "",
                met=n / seconds >= 500_000 if spec_size else None,
                detail={
                    "seconds": seconds,
                    "read_seconds": read_seconds,
                    "rows_read": rows_read,
                    "counts": meta["counts"],
                },
            )
        )
        ctx.log(f"verify: {n:,} events")
        v_seconds, checked = best_of(repeats, verify)
        problems = [str(p) for _, p in checked.values() if p is not None]
        total = sum(count for count, _ in checked.values())
        if problems or total != n:
            raise AssertionError(f"fast verify found problems in a good log: {problems[:3]} ({total} of {n})")
        messages = _messages(path, min(n, HASH_SAMPLE))
        h_seconds, _ = best_of(repeats, lambda messages=messages: _hash_all(messages))
        figures.append(
            Figure(
                key=f"verify.{n}",
                section="Replay and verify",
                name="verify hash chains (ledger.sqlite.verify_log_raw, a process per core from 200k events)",
                size=f"{n:,} events, {len(streams)} sessions",
                scale=f"{n:,} events",
                value=n / v_seconds,
                unit="events/s",
                limit=len(messages) / h_seconds,
                limit_name=f"hashlib.sha256 of the same bytes in memory ({len(messages):,} events)",
                goal=">= 300,000 events/s" if spec_size else "",
                met=n / v_seconds >= 300_000 if spec_size else None,
                detail={
                    "seconds": v_seconds,
                    "hash_seconds": h_seconds,
                    "hashed": len(messages),
                    "mean_bytes": sum(map(len, messages)) / len(messages),
                },
            )
        )
    return figures


def _messages(path: Path, limit: int) -> list[bytes]:
    """The exact bytes `verify_log_raw` hashes, for the first `limit` events of the log."""
    from ledger import chain
    from ledger import sqlite as fast

    out: list[bytes] = []
    with fast.connect(path) as conn:
        for _seq, stream, version, type_, payload, at, prev, _hash in conn.execute(fast._LOG_SQL, (0, 2**63 - 1)):
            out.append(chain.hash_text(prev, stream, version, type_, chain.at_text(at), payload).encode())
            if len(out) >= limit:
                break
    return out


def _hash_all(messages: list[bytes]) -> int:
    sha256 = hashlib.sha256
    for message in messages:
        sha256(message).hexdigest()
    return len(messages)


def _by_text(matrix: dict) -> dict[str, list[int]]:
    """Holdings keyed as JSON keeps them (the generator's expectations went through a JSON file)."""
    return {str(holder): row for holder, row in matrix.items()}
