"""Many WebSocket clients in one asyncio process, stamping when each message arrives (for bench/push.py).

    python -m bench.push_clients URL HEADERS.json OUT.json [--timeout S] [--connect-concurrency N]

HEADERS.json is a list with one {header: value} dict per client (its session cookie, its Origin). Every
client connects, waits for its first message (the floor on connect, or nothing for the echo server, which
sends a greeting), and then the process prints `READY <connected> <failed> <seconds>`: seconds from the
first connect to the last first message (with `--connect-concurrency` as large as the clients, a
reconnect storm). From then on each message
is stamped with time.time() on arrival and its seq read from it. `done` on stdin ends the run: the clients
close and OUT.json gets, per client, the list of [seq, time, bytes].

Commands on stdin, one per line: `wait SEQ TIMEOUT` answers `got SEQ N` once N clients (all, unless the
timeout passed) have a message with seq >= SEQ, so the writer can space its events; `done` ends the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time

from websockets.asyncio.client import connect

SEQ_RE = re.compile(rb'data-testid="seq">(\d+)<|^seq:(\d+)\|')


def seq_of(message: bytes) -> int:
    match = SEQ_RE.search(message)
    if match is None:
        return -1
    return int(match.group(1) or match.group(2))


async def client(
    url: str, headers: dict[str, str], gate: asyncio.Semaphore, ready: asyncio.Event, out: list, latest: list, i: int
) -> None:
    async with gate:
        ws = await connect(url, additional_headers=headers, max_size=None, open_timeout=120, ping_interval=None)
        first = await asyncio.wait_for(ws.recv(decode=False), timeout=120)
    out.append([seq_of(first), time.time(), len(first)])
    ready.set()
    try:
        while True:
            message = await ws.recv(decode=False)
            now = time.time()
            seq = seq_of(message)
            out.append([seq, now, len(message)])
            if seq > latest[i]:
                latest[i] = seq
    except asyncio.CancelledError:
        await ws.close()
        raise
    except Exception:  # closed by the server
        pass


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("headers")
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--connect-concurrency", type=int, default=20)
    args = parser.parse_args(argv)
    headers = json.loads(open(args.headers).read())
    gate = asyncio.Semaphore(args.connect_concurrency)
    records: list[list] = [[] for _ in headers]
    events = [asyncio.Event() for _ in headers]
    latest = [-1] * len(headers)
    tasks = [
        asyncio.create_task(client(args.url, h, gate, ev, rec, latest, i))
        for i, (h, ev, rec) in enumerate(zip(headers, events, records, strict=True))
    ]
    began = time.monotonic()
    deadline = began + args.timeout
    # Ready when every client has its first message or has failed.
    while time.monotonic() < deadline:
        done = sum(1 for ev in events if ev.is_set())
        failed = sum(1 for t in tasks if t.done() and t.exception() is not None)
        if done + failed == len(tasks):
            break
        await asyncio.sleep(0.05)
    firsts = [rec[0][1] for rec in records if rec]
    storm = (max(firsts) - (time.time() - (time.monotonic() - began))) if firsts else 0.0
    failures = [repr(t.exception())[:200] for t in tasks if t.done() and t.exception() is not None]
    print(f"READY {sum(1 for ev in events if ev.is_set())} {len(failures)} {storm:.3f}", flush=True)
    if failures:
        print(f"first failure: {failures[0]}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    alive = [i for i, ev in enumerate(events) if ev.is_set()]
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, sys.stdin.readline), timeout=max(1.0, deadline - time.monotonic())
            )
        except TimeoutError:
            break
        words = line.split()
        if not words or words[0] == "done":
            break
        if words[0] == "wait":
            target, until = int(words[1]), time.monotonic() + float(words[2])
            while time.monotonic() < until and any(latest[i] < target for i in alive):
                await asyncio.sleep(0.005)
            print(f"got {target} {sum(1 for i in alive if latest[i] >= target)}", flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(args.out, "w") as fh:
        json.dump(records, fh)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
