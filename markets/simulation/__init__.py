"""The seeded market simulator (`manage.py simulate`): a harness that drives the real services and
database, apart from them.

One run: users sim-org (organiser), sim-t1.. (traders), sim-m1.. (makers) and sim-eve (an outsider)
-> a manual session `sim-<seed>` over `legs` legs, opened pro rata -> `steps` actions -> settlement at
the oracle's fixing -> full replay and audit. Every action goes through `markets.services`, exactly as
a browser or the API would send it, including bad inputs on purpose (garbage numbers, the wrong user,
expired or dead quotes, too little inventory, the same leg twice...).

Before each action the simulator predicts, from the stored projection, which refusals apply; an action
with none must succeed, one with some must fail with one of those codes. After every action it checks:
1. conservation: each leg sums to q exactly; 2. no negative holding; 3. the last TradeExecuted event is
zero-sum and moved the holdings by exactly its deltas; and a refused action wrote nothing (Event count,
holdings and the session's version unchanged). At the end: 4. sum of payouts == q . S, the replay of the
stream equals the stored projection, and `audit.verify_session` passes. The first violation raises
SimulationError naming the seed, the step and the events involved.

Repeatable: all randomness comes from `numpy.random.default_rng(seed)` (the oracle's SimSource has its
own generator from the same seed), all time from the frozen ledger clock starting at T0, and every id is
derived from the database. RFQ, quote, trade and tick ids are global (max + 1), so two runs give the same
ledger (the same head hash) only in two fresh databases.

    model.py    the reference model of what must be refused (shared with the property test)
    result.py   parameters, the result table, the error that names seed, step and events
    intents.py  what simulated participants try, well-formed or bad on purpose
    auction.py  the same for batch auctions (`--mechanism batch` or `both`): limit orders, cancels, the
                organiser's cut and the scheduler's when due; each cut's book, fills and ageing and every
                step's reservations checked against the model
    margin_model.py  bounded shorting in the reference model: short_limit and margin refusals, liquidation
                and deleveraging, the settlement haircut
    shorting.py the simulator's shorting (`--short-limit`): shorting traders, price jumps, liquidation runs
                checked after every tick, invariant 2 with limits, payouts after the haircut
    fixing_model.py  the fixing rules a run may settle by (`--fixing`) and each leg's fixing made again from the
                simulator's own ticks
    feed.py     the oracle's ticks of a run, and the fixing burst at settlement, on the model's tape too
    engine.py   the run: set-up, each step and its checks
    proof.py    settlement at the fixing and the final proof (replay, audit)
"""

from markets.simulation.engine import Simulation, event_hashes, run
from markets.simulation.result import SimParams, SimulationError, SimulationResult

__all__ = ["SimParams", "Simulation", "SimulationError", "SimulationResult", "event_hashes", "run"]
