"""Bots, so a session has counterparties (`manage.py run_bots`): automated market makers and noise takers
that trade through the same services as people do.

    policy.py  what they decide: pure functions of what they see and one seeded random.Random
    auction.py what they decide in sessions with batch auctions: two-sided limit orders around the fair
               rate (makers), orders that cross it (takers), stale orders cancelled before the cut
    market.py  what they read of a session (open RFQs, live quotes, prices, what they may give, their
               own resting orders, the next cut)
    crew.py    their accounts, joining before the session opens, and `Crew.step(now)`: read, decide,
               act through `markets.services` as each bot's own user; a refusal is logged, not raised

The same seed against the same prices gives the same actions (ids aside: the database numbers those).
"""

from markets.bots.crew import Action, Crew, bot_names, ensure_users, join_bots, not_joined
from markets.bots.policy import Params

__all__ = ["Action", "Crew", "Params", "bot_names", "ensure_users", "join_bots", "not_joined"]
