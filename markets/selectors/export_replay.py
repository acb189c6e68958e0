"""The export's walk through a session's log: holdings x[i][k] with the deltas the events recorded (what
`markets.projections` applies: the allocation, trades, batch fills, auto-deleveraging), which events made
each x[i][k] (corporate actions too), whom each step touched, and the settlement's own data. holdings.csv, reconciliation.csv and
margin.csv read the session through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ledger.models import Event
from markets import projections
from markets.errors import Conflict

if TYPE_CHECKING:
    from markets.selectors.export import SessionExport

# The events after which holdings are listed: the allocation, each trade, each batch that traded, each
# auto-deleveraging (bounded shorting), each corporate action applied (a split, a merger), the settlement
# (what was paid).
HOLDING_EVENTS = frozenset(
    {
        "InitialAllocationAssigned",
        "TradeExecuted",
        "BatchCleared",
        "AutoDeleveraged",
        "CorporateActionApplied",
        "SessionSettled",
    }
)


class Replay:
    """The session's events in order, keeping x[i][k] with the deltas the events recorded (what
    `projections` applies), which events made each x[i][k], and the settlement's own data."""

    def __init__(self, export: SessionExport) -> None:
        self.export = export
        self.holdings: dict[int, list[int]] = {}
        self.made: dict[tuple[int, int], list[int]] = {}
        self.settled: dict[str, Any] | None = None
        self.touched: set[int] = set()  # whose holdings the last step moved (or whom it named)

    def _move(self, user: int, k: int, delta: int, seq: int) -> None:
        if delta:
            self.holdings[user][k] += delta
            self.made[(user, k)].append(seq)
            self.touched.add(user)

    def steps(self, extra: frozenset[str] = frozenset()) -> Iterator[Event]:
        """Each event that changed holdings (or paid them), once `holdings` shows what it left; and each
        event of the `extra` types (they move nothing: `touched` is whom they name)."""
        sid, n = self.export.session.id, len(self.export.legs)
        for event in self.export.events((*HOLDING_EVENTS, *extra) if extra else None):
            if event.type not in HOLDING_EVENTS and event.type not in extra:
                continue
            d = event.data
            self.touched = set()
            if event.type == "InitialAllocationAssigned":
                for user, row in projections.allocation_by_user(sid, d).items():
                    self.holdings[user] = list(row)
                    self.touched.add(user)
                    for k in range(n):
                        self.made[(user, k)] = [event.seq]
            elif event.type == "TradeExecuted":
                for side in ("taker", "maker"):
                    user = self.export.user_of(d, side)
                    for k, delta in enumerate(d[f"{side}_deltas"]):
                        self._move(user, k, delta, event.seq)
            elif event.type == "BatchCleared":
                if d["result"]["result"] != "cleared":
                    continue  # nothing moved
                for f in d["result"]["fills"]:
                    for k, delta in ((f["give"], -f["given"]), (f["get"], f["received"])):
                        self.holdings[f["owner"]][k] += delta
                        self.made[(f["owner"], k)].append(event.seq)
                        self.touched.add(f["owner"])
            elif event.type in ("AutoDeleveraged", "CorporateActionApplied"):
                for user, row in sorted(d["deltas_by_id"].items()):
                    for k, delta in enumerate(row):
                        self._move(int(user), k, delta, event.seq)
            elif event.type == "SessionSettled":
                self.settled = d
            elif "user_id" in d:
                self.touched.add(d["user_id"])
            yield event

    def run(self) -> Replay:
        for _ in self.steps():
            pass
        if self.settled is None:  # a settled status without its event: the log and projection disagree
            raise Conflict(f"Session {self.export.session.id} has no settlement in its log", "not_settled")
        return self

    def paid(self) -> dict[int, str]:
        """{user id: payout} exactly as the settlement recorded it."""
        assert self.settled is not None
        return projections.payouts_by_user(self.export.session.id, self.settled)
