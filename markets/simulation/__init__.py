"""The seeded market simulator (`manage.py simulate`): a harness that drives the real services, apart
from them.

    model.py    the reference model of what must be refused (shared with the property test)
    result.py   parameters, the result table, the error that names seed, step and events
    intents.py  what simulated participants try, well-formed or bad on purpose
    engine.py   the run: set-up, each step checked, settlement, the final proof
"""

from markets.simulation.engine import Simulation, event_hashes, run
from markets.simulation.result import SimParams, SimulationError, SimulationResult

__all__ = ["SimParams", "Simulation", "SimulationError", "SimulationResult", "event_hashes", "run"]
