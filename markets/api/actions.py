"""Corporate actions: `POST /sessions/{id}/actions` schedules one (the organiser; `services.schedule_action`
checks everything and writes it, or refuses with its code and writes nothing), `GET /sessions/{id}/actions`
lists them for whoever may see the session, with a summary of what each did once applied."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from markets import selectors, services
from markets.api.errors import ERRORS
from markets.api.idempotency import post
from markets.api.schemas import Input, Setting, Text
from markets.selectors import actions as reads

router = Router(tags=["corporate actions"])


def _cut(value: Any) -> dt.datetime:
    """The cut as ISO 8601 text with a timezone, in UTC; anything else is 422 `invalid_time`."""
    if not isinstance(value, str) or "\x00" in value or len(value) > 64:
        raise PydanticCustomError("invalid_time", "must be an ISO 8601 date and time with a timezone")
    try:
        at = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("invalid_time", "must be an ISO 8601 date and time with a timezone") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise PydanticCustomError("invalid_time", "needs a timezone, e.g. 2026-01-31T16:00:00Z")
    try:
        return at.astimezone(dt.UTC)
    except OverflowError:
        raise PydanticCustomError("invalid_time", "is out of range") from None


def _ratio(value: Any) -> Any:
    """A ratio as text ("10/1", "0.5") or a JSON number (read exactly: 0.5 is "0.5"); the service reads it
    and refuses a bad one with 422 `invalid_ratio`."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    return value


Cut = Annotated[
    dt.datetime,
    PlainValidator(_cut),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2030-06-10T13:30:00Z"]}),
]
Ratio = Annotated[
    Any,
    PlainValidator(_ratio),
    WithJsonSchema({"anyOf": [{"type": "string", "examples": ["10/1", "1/7", "0.5"]}, {"type": "number"}]}),
]


class ActionIn(Input):
    kind: Text = Field(..., max_length=20, description="split, dividend, merger or rename", examples=["split"])
    leg: Text = Field(..., max_length=32, description="The leg it applies to (any case)", examples=["NVDA"])
    effective_at: Cut = Field(..., description="The cut (ISO 8601 with a timezone): after now and before t2")
    ratio: Ratio = Field(None, description='split: "10/1" (a reverse split "1/10"); merger into a leg: units per unit')
    amount: Setting = Field(None, description="dividend: cash per unit held (price, 6 dp at most)")
    into: Text | None = Field(None, max_length=32, description="merger: the leg it merges into (with ratio)")
    cash: Setting = Field(None, description="merger: cash per unit instead of another leg")
    to: Text | None = Field(None, max_length=32, description="rename: the name people see from the cut on")


class ActionResultOut(Schema):
    q_before: str = Field(..., description="q of the leg before the cut")
    q_after: str = Field(..., description="q of the leg after it (0 after a merger)")
    cash_total: str = Field(..., description="Cash credited to holders: in lieu of fractions, dividends, mergers")
    leftover: int = Field(..., description="Leftover base units given by largest remainder")


class ActionOut(Schema):
    number: int = Field(..., description="1, 2, ... within the session (what its events name)")
    kind: str
    leg: str
    effective_at: dt.datetime
    params: dict[str, str] = Field(..., description="As the service wrote them: ratio, amount, into, cash, to")
    status: str = Field(..., description="scheduled, or applied once its cut came")
    scheduled_at: dt.datetime
    applied_at: dt.datetime | None
    result: ActionResultOut | None = Field(..., description="What applying it did (null until applied)")


@post(
    router,
    "/sessions/{session_id}/actions",
    response={201: ActionOut, **ERRORS},
    summary="Schedule a corporate action on a leg at a cut (organiser): split, dividend, merger, rename",
)
def schedule_action(request: HttpRequest, session_id: str, payload: ActionIn):
    params = payload.model_dump(exclude_unset=True, exclude={"kind", "leg", "effective_at"})
    action = services.schedule_action(
        request.auth, session_id, payload.kind, payload.leg, payload.effective_at, **params
    )
    return Status(201, reads.action_out(action.session, action))


@router.get(
    "/sessions/{session_id}/actions",
    response={200: list[ActionOut], **ERRORS},
    summary="The session's corporate actions by number, with what each did once applied",
)
def list_actions(request: HttpRequest, session_id: str):
    session = selectors.session_for(session_id, request.auth)
    return Status(200, [reads.action_out(session, a) for a in reads.actions_of(session)])
