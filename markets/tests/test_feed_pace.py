"""The feed's pace: under a stream of commits a process pushes at most once every FEED_PUSH_GAP_SECONDS
(each push carries everything committed meanwhile), and a commit after a quiet spell goes at once."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from markets.push.feed import Feed


class Ledger:
    """A source written to every 5 ms while `busy` (commits come at their own pace, not the polls')."""

    def __init__(self) -> None:
        self.next = 0
        self.since: float | None = None
        self.pushed: list[tuple[float, list[int]]] = []

    @property
    def busy(self) -> bool:
        return self.since is not None

    @busy.setter
    def busy(self, value: bool) -> None:
        self.next = self._written()
        self.since = time.monotonic() if value else None

    def _written(self) -> int:
        return self.next if self.since is None else self.next + 1 + int((time.monotonic() - self.since) / 0.005)

    def start(self) -> int:
        return 0

    def poll(self, cursor: int) -> tuple[list[int], int]:
        last = self._written()
        return list(range(cursor + 1, last + 1)), last

    async def handler(self, items: list[int]) -> None:
        self.pushed.append((time.monotonic(), items))


async def run_feed(ledger: Ledger, seconds: float) -> Feed:
    feed = Feed()
    feed.register("events", ledger.start, ledger.poll, ledger.handler)
    await feed.ensure_running()
    await asyncio.sleep(seconds)
    return feed


@pytest.mark.parametrize("gap", [0.25, 0.0])
async def test_under_a_stream_of_commits_pushes_come_at_most_once_per_gap_and_lose_nothing(settings, gap):
    settings.FEED_POLL_SECONDS, settings.FEED_PUSH_GAP_SECONDS = 0.01, gap
    ledger = Ledger()
    ledger.busy = True
    feed = await run_feed(ledger, 1.3)
    ledger.busy = False
    await asyncio.sleep(0.4)
    feed._task.cancel()
    times = [at for at, _ in ledger.pushed]
    assert [i for _, items in ledger.pushed for i in items] == list(range(1, ledger.next + 1))  # all, once, in order
    if gap:
        assert 5 <= len(times) <= 7, times  # 1.3 s at one push per 0.25 s, and the rest once quiet
        assert min(b - a for a, b in itertools.pairwise(times)) >= gap * 0.75  # each recorded a little late, or not
        assert max(len(items) for _, items in ledger.pushed) > 1  # what came meanwhile went together
    else:
        assert len(times) > 40  # a push for every poll


async def test_a_commit_after_a_quiet_spell_is_pushed_at_once(settings):
    settings.FEED_POLL_SECONDS, settings.FEED_PUSH_GAP_SECONDS = 0.02, 0.5
    ledger = Ledger()
    feed = await run_feed(ledger, 0.6)
    assert ledger.pushed == []
    ledger.busy = True
    committed = time.monotonic()
    while not ledger.pushed:
        await asyncio.sleep(0.005)
    feed._task.cancel()
    assert ledger.pushed[0][0] - committed < 0.25  # the next poll, not the gap


async def test_a_notify_reads_the_source_it_names_and_a_nudge_naming_none_reads_all(settings):
    """On PostgreSQL each table's commits NOTIFY on a channel of their own: a tick wakes the tick source
    only, not a read of the event log too (and this process's own appends the log only). A nudge that
    names no channel, or one no source signals on, reads every source, as the interval does."""
    settings.FEED_POLL_SECONDS, settings.FEED_PUSH_GAP_SECONDS = 60, 0.0
    polls = {"events": 0, "ticks": 0}

    def poller(name: str):
        def poll(cursor: int) -> tuple[list[int], int]:
            polls[name] += 1
            return [], cursor

        return poll

    async def handler(items: list[int]) -> None: ...

    feed = Feed()
    feed.register("events", lambda: 0, poller("events"), handler, "sc_ledger")
    feed.register("ticks", lambda: 0, poller("ticks"), handler, "sc_ticks")
    await feed.ensure_running()
    await asyncio.sleep(0.5)  # on PostgreSQL its listener has connected (and woken every source once)

    async def after(nudge) -> dict[str, int]:
        before = dict(polls)
        nudge()
        await asyncio.sleep(0.2)
        return {name: polls[name] - before[name] for name in polls}

    try:
        assert await after(lambda: feed.nudge("sc_ticks")) == {"events": 0, "ticks": 1}
        assert await after(lambda: feed.nudge("sc_ledger")) == {"events": 1, "ticks": 0}
        assert await after(feed.nudge) == {"events": 1, "ticks": 1}
        assert await after(lambda: feed.nudge("sc_other")) == {"events": 1, "ticks": 1}  # unknown: all
    finally:
        feed._task.cancel()
        if feed.listener is not None:
            feed.listener.stop()
