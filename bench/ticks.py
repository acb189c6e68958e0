"""Price history for a bench session, as the oracle would have written it: one tick a second per leg
for the last hour (loaded in bulk, not measured), so the floor's price cards and chart read a real
history rather than none."""

from __future__ import annotations

import datetime as dt
import random

TICK_SECONDS = 3_600


def load_ticks(session_id: str, *, seconds: int = TICK_SECONDS, seed: int = 5) -> int:
    """Ticks for every leg of `session_id`, one a second up to now, a seeded random walk in whole base
    units; returns how many were written."""
    from bench.common import fast_setup
    from markets.models import Session
    from oracle.models import Tick

    session = Session.objects.get(id=session_id)
    rng = random.Random(seed)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = []
    for leg in session.legs:
        price = rng.randrange(50, 500) * 1_000_000
        for k in range(seconds):
            price = max(1_000_000, price + rng.randrange(-200_000, 200_001))
            at = end - dt.timedelta(seconds=seconds - k)
            rows.append(Tick(session_id=session_id, symbol=leg, at=at, price=price, source="bench"))
    rows.sort(key=lambda t: t.at)  # the oracle writes the legs of one instant together
    with fast_setup():
        Tick.objects.bulk_create(rows, batch_size=2_000)
    return len(rows)
