"""The sim's traded sizes: every sim tick of every leg carries a volume (integers of 10**-6 units, as
`oracle.fixing_methods.VOLUME_SCALE`), so `vwap` and its volume tests have something to weigh.

Per tick and walked symbol: `median * exp(sigma * z)`, z ~ N(0, 1), rounded half even to a whole number
of lots (at least one lot): a lognormal size, the usual first model of trade sizes (heavy right tail,
never zero). The draws come from their own stream of the seed (`default_rng([seed, STREAM])`), so the
prices of a seed are the same with or without volumes, and the same seed gives the same volumes. A
session's line of its own (`SimSource.line`, a restart at its own level) trades its symbol's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from oracle.simconfig import SimConfig

STREAM = 0x766F6C  # "vol": the volumes' stream of a seed, apart from the prices'
MAX_SIZE = 10**18  # base units: a tick's size stays storable (BigInteger) however wild the sigma


class SimVolumes:
    """Seeded lognormal sizes per tick, one per walked symbol, in 10**-6 units."""

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.median = config.volume_median
        self.sigma = config.volume_sigma
        self.lot = config.volume_lot
        self.rng = np.random.default_rng([seed, STREAM])

    def draw(self, symbols: Sequence[str]) -> dict[str, int]:
        """One size per symbol, in order: the same symbols in the same order draw the same sizes."""
        z = self.rng.standard_normal(len(symbols))
        sizes = {}
        for symbol, shock in zip(symbols, z, strict=True):
            lots = round(self.median * math.exp(self.sigma * float(shock)) / self.lot)  # half even
            sizes[symbol] = min(max(lots, 1), MAX_SIZE // self.lot) * self.lot
        return sizes


def with_volumes(
    feed: Iterable[tuple[float, dict[str, int]]], symbols: Sequence[str], volumes: SimVolumes
) -> Iterator[tuple[float, dict[str, int], dict[str, int]]]:
    """The sim feed's (delay, prices) with each tick's sizes: (delay, prices, {symbol: volume}).
    `symbols` is the walk's list (`SimSource.legs`), read at each tick: legs added later trade too."""
    for delay, prices in feed:
        yield delay, prices, volumes.draw(list(symbols))
