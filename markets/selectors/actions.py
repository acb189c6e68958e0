"""Corporate actions as people read them: each action of a session with its parameters and status, and once
applied a summary of what it did (the leg's q before and after, the cash paid in, how many leftover units
went by largest remainder), read from the result CorporateActionApplied recorded. The one reading behind
`GET /sessions/{id}/actions`, the admin and `actions.csv`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ledger.chain import format_at
from ledger.models import Event
from markets import domain
from markets.models import CorporateAction, Session
from markets.selectors import action_banner


@dataclass(frozen=True)
class Summary:
    """What an applied action did to its leg, as text: q before and after, the cash total, leftovers."""

    q_before: str
    q_after: str
    cash_total: str
    leftover: int


def actions_of(session: Session) -> list[CorporateAction]:
    """The session's actions by number (the order they were scheduled in)."""
    return list(CorporateAction.objects.filter(session_id=session.id).order_by("number"))


def summary(session: Session, action: CorporateAction) -> Summary | None:
    """What the action did, from its recorded result (None until applied)."""
    if action.status != CorporateAction.Status.APPLIED or not action.result:
        return None
    return summarise(list(session.legs), action.leg, action.result)


def summarise(legs: list[str], leg: str, result: dict[str, Any]) -> Summary:
    """The summary of a CorporateActionApplied payload for its leg."""
    k = legs.index(leg)
    cash = action_banner.cash_total(result)
    return Summary(
        q_before=domain.qty_str(result["q_before"][k]),
        q_after=domain.qty_str(result["q_after"][k]),
        cash_total=domain.money_str(cash),
        leftover=len(result.get("leftover", [])),
    )


def action_out(session: Session, action: CorporateAction) -> dict[str, Any]:
    """An action as the API shows it."""
    made = summary(session, action)
    return {
        "number": action.number,
        "kind": action.kind,
        "leg": action.leg,
        "effective_at": action.effective_at,
        "params": dict(action.params),
        "status": action.status,
        "scheduled_at": action.scheduled_at,
        "applied_at": action.applied_at,
        "result": None if made is None else made.__dict__.copy(),
    }


def params_text(params: dict[str, str]) -> str:
    """The parameters in one line, keys in order: "ratio=10/1", "into=AAPL ratio=3/4"."""
    return " ".join(f"{key}={params[key]}" for key in sorted(params))


ACTION_EVENTS = ("CorporateActionScheduled", "CorporateActionApplied")
ACTIONS_HEADER = ["number", "kind", "leg", "effective_at", "params", "status", "scheduled_at", "applied_at",
                  "q_before", "q_after", "cash_total", "leftover", "scheduled_seq", "applied_seq"]  # fmt: skip


def action_rows(legs: list[str], events: Iterable[Event]) -> Iterator[list[str]]:
    """actions.csv from the log (CorporateActionScheduled and CorporateActionApplied, up to the export's
    cut): one row per action by number, times as the ledger hashes them, the summary's cells empty until
    applied."""
    rows: dict[int, list[str]] = {}
    for event in events:
        d = event.data
        if event.type == "CorporateActionScheduled":
            rows[d["action"]] = [str(d["action"]), d["kind"], d["leg"], d["effective_at"], params_text(d["params"]),
                                 "scheduled", format_at(event.at), "", "", "", "", "", str(event.seq), ""]  # fmt: skip
        elif event.type == "CorporateActionApplied" and d["action"] in rows:
            made = summarise(legs, d["leg"], d)
            rows[d["action"]][5:] = ["applied", rows[d["action"]][6], format_at(event.at), made.q_before,
                                     made.q_after, made.cash_total, str(made.leftover), rows[d["action"]][12],
                                     str(event.seq)]  # fmt: skip
    for number in sorted(rows):
        yield rows[number]
