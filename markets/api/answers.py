"""Response shapes of the JSON API (pydantic, via django-ninja): quantities, rates and prices as exact
decimal strings ("6.200000"); the request shapes, with their limits, are in markets.api.schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from ninja import Schema
from pydantic import Field


class ErrorOut(Schema):
    code: str = Field(..., description="Stable, for programs")
    message: str = Field(..., description="Readable, for people")


class ConflictOut(ErrorOut):
    W: str | None = Field(None, description="409 `margin` only: W after the move (money, 12 dp)")
    requirement: str | None = Field(None, description="409 `margin` only: the requirement W had to meet")
    binding_leg: str | None = Field(None, description="409 `margin` only: the short leg that binds")
    who: str | None = Field(None, description='409 `margin` only: whose side broke it ("you", or the maker)')


class MeOut(Schema):
    username: str
    can_create_sessions: bool


class ParticipantOut(Schema):
    session_id: str
    username: str = Field(..., description="The account")
    name: str = Field(..., description="The name people see: as typed when joining by link, else the full name")
    role: str
    joined_at: dt.datetime


class SessionOut(Schema):
    id: str
    title: str
    status: Literal["created", "open", "closed", "settled", "cancelled"] = Field(
        ..., description="As of now: an open timed session at or past t2 is closed (trading stops at t2 by itself)"
    )
    status_note: str = Field(..., description="Where the session stands, in words")
    legs: list[str]
    q: list[str]
    t1: dt.datetime | None
    t2: dt.datetime | None
    start_mode: str
    end_mode: str
    allocation_mode: str
    fixing_rule: dict[str, Any] = Field(
        ..., description="How S_t2 is taken, in its one written form (see POST /sessions and docs/api.md)"
    )
    fixing_described: str = Field(..., description="The fixing rule in words")
    visibility: str
    created_by: str
    created_at: dt.datetime
    opened_at: dt.datetime | None
    settled_at: dt.datetime | None
    waiting_reason: str
    paused: bool = Field(..., description="The organiser paused trading (the status stays open): 409 trading_paused")
    paused_at: dt.datetime | None
    pause_reason: str
    version: int = Field(..., description="Version of the session's event stream")
    last_seq: int = Field(..., description="Global seq of the last event applied")
    participants: list[ParticipantOut]
    mechanism: Literal["rfq", "batch", "both"] = Field(
        ..., description="How it trades: RFQs, batch auctions of sealed limit orders, or both"
    )
    batch_seconds: int | None = Field(..., description="Batch auctions: seconds between cuts (null: RFQ only)")
    batch_band: str | None = Field(
        ..., description="Batch auctions: each clearing price within this fraction of the oracle's (exact, 0.10)"
    )
    max_orders: int | None = Field(..., description="Batch auctions: resting orders per participant at most")
    min_order: str | None = Field(..., description="Batch auctions: least order size (units of its give leg)")
    next_cut_at: dt.datetime | None = Field(..., description="When the next batch clears (open batch sessions)")
    batches: int = Field(..., description="Batches recorded so far")
    short_limit: str | None = Field(
        ...,
        description="Bounded shorting: the most short per participant and leg, and the pool's cap, x q_k (null: off)",
    )
    margin_band: str | None = Field(..., description="Bounded shorting: the scenario box's half-width (null: off)")
    initial_margin: str | None = Field(
        ..., description="Bounded shorting: the requirement, a fraction of the gross short value (null: off)"
    )


class HoldingRowOut(Schema):
    username: str
    name: str
    role: str
    x: dict[str, str] = Field(..., description="Current holding per leg")
    initial: dict[str, str] = Field(..., description="Initial allocation per leg")


class AllocationsOut(Schema):
    session_id: str
    status: str
    legs: list[str]
    as_of_seq: int
    holdings: list[HoldingRowOut]
    totals: dict[str, str] = Field(..., description="Sum over participants; equals q when open")


class QuoteOut(Schema):
    id: int
    rfq_id: int
    maker: str
    maker_name: str
    rate: str
    receive: str = Field(..., description="What the taker would get of the get leg at this rate")
    expires_at: dt.datetime
    status: str
    created_at: dt.datetime


class RFQOut(Schema):
    id: int
    session_id: str
    taker: str
    taker_name: str
    give_leg: str
    get_leg: str
    quantity: str
    status: str
    created_at: dt.datetime
    closed_at: dt.datetime | None
    quotes: list[QuoteOut]


class TradeOut(Schema):
    id: int
    session_id: str
    rfq_id: int
    quote_id: int
    taker: str
    taker_name: str
    maker: str
    maker_name: str
    give_leg: str
    get_leg: str
    give_qty: str
    get_qty: str
    rate: str
    executed_at: dt.datetime
    seq: int


class EventOut(Schema):
    seq: int
    stream: str
    version: int
    type: str
    payload: dict[str, Any]
    at: str = Field(..., description="UTC, exactly as hashed")
    prev_hash: str
    hash: str


class EventsPageOut(Schema):
    session_id: str
    events: list[EventOut]
    next_after: int = Field(..., description="Pass as ?after= to read on")
    has_more: bool


class PricePointOut(Schema):
    id: int = Field(..., description="The tick's id (a settlement's fixing record names the ticks it read)")
    price: str
    at: dt.datetime
    source: str = Field(..., description="The feed that stored it: run_oracle --source, sim:seed=N, replay:FILE")
    volume: str | None = Field(
        ..., description="Units traded at this tick (exact decimal, 6 places); null when the feed gave none"
    )


class PricesOut(Schema):
    session_id: str
    legs: list[str]
    latest: dict[str, PricePointOut] = Field(..., description="Newest tick per leg (legs without one are absent)")
    history: dict[str, list[PricePointOut]] = Field(
        ..., description="Up to ?history=N recent ticks per leg, oldest first"
    )


class PayoutOut(Schema):
    username: str
    name: str
    role: str
    amount: str = Field(..., description="What was paid: x_i . S_t2 + cash (money, 12 dp)")
    cash: str = Field(..., description="Cash from corporate actions (dividends, cash in lieu, mergers), in amount")


class FixingPassedOut(Schema):
    tier: int = Field(..., description="The tier that could not answer (0: the first)")
    rule: str
    reason: str = Field(..., description='Why, e.g. "vwap: volume 0 in the window, 1000 needed"')


class FixingLegOut(Schema):
    value: str | None = Field(..., description="S_t2 of this leg (price text)")
    tier: int | None = Field(..., description="The tier that answered, 0 for the first (null: not recorded)")
    rule: str = Field(..., description="The rule of that tier (manual: a price given by hand)")
    passed: list[FixingPassedOut] = Field(..., description="Each tier above it, and why it could not answer")
    used: list[int] = Field(..., description="Ids of the ticks the value came from")
    read: list[int] | None = Field(..., description="Ids of every tick the rule looked at (null: not recorded)")
    sources: list[str] = Field(..., description="Sources of the ticks used")
    volume: str | None = Field(..., description="Units traded in the ticks used (null: they carry no volume)")
    by_source: dict[str, str] | None = Field(None, description="composite: each source's own fixing kept")
    dropped: dict[str, str] | None = Field(None, description="composite: sources dropped as outliers, their fixing")
    refused: dict[str, str] | None = Field(None, description="composite: sources that could not answer, why")


class FixingOut(Schema):
    source: Literal["oracle", "manual"] = Field(..., description="The oracle's fixing, or prices given by hand")
    rule: dict[str, Any]
    described: str = Field(..., description="The rule in words")
    at: str | None = Field(..., description="The instant the fixing is for (t2, or when settled by hand)")
    end: str | None = Field(..., description="Where the window ended (t2 + after, or earlier when cut by hand)")
    window: dict[str, int] | None = Field(..., description="Seconds the rule looks before and after the instant")
    ticks: dict[str, list[int]] = Field(..., description="Per leg, the ids of the ticks used (as ever)")
    detailed: bool = Field(..., description="The record says per leg how (false: a record from before, or manual)")
    legs: dict[str, FixingLegOut] = Field(..., description="Per leg, in the session's order")


class SettlementOut(Schema):
    session_id: str
    status: str
    settled: bool
    settled_at: dt.datetime | None
    prices: dict[str, str]
    fixing: FixingOut | None = Field(..., description="How the prices were made (null until settled)")
    total: str | None = Field(..., description="Sum of payouts")
    expected: str | None = Field(..., description="q . S_t2; equals total")
    payouts: list[PayoutOut]


# ---------------------------------------------------------------- batch auctions


class OrderOut(Schema):
    id: int
    session_id: str
    user_id: int = Field(..., description="The owner, by immutable id")
    username: str
    name: str
    give_leg: str
    get_leg: str
    quantity: str = Field(..., description="Units of the give leg it may give, as placed")
    rest: str = Field(..., description="Still to give (reserved while it rests)")
    given: str = Field(..., description="Given so far: quantity - rest")
    received: str = Field(..., description="Received so far, over every batch that filled it")
    limit_rate: str = Field(..., description="Least units of the get leg per unit given")
    status: Literal["resting", "filled", "cancelled", "expired", "lapsed"] = Field(
        ..., description="As of now: a resting order of a timed session at or past t2 reads lapsed"
    )
    gtc: bool = Field(..., description="Good till cancelled")
    batches_left: int | None = Field(..., description="Batches it still lives for (null: gtc)")
    placed_at: dt.datetime
    closed_at: dt.datetime | None
    seq: int = Field(..., description="Seq of its OrderPlaced event")


class PositionOut(Schema):
    user_id: int
    username: str
    name: str
    role: str
    held: dict[str, str] = Field(..., description="x per leg")
    reserved: dict[str, str] = Field(..., description="Reserved per leg by resting orders")
    available: dict[str, str] = Field(..., description="held - reserved: what a new order or an RFQ may give")
    resting_orders: int


class PositionsOut(Schema):
    session_id: str
    status: str
    legs: list[str]
    as_of_seq: int
    holdings: list[PositionOut] = Field(..., description="Yours (empty if you hold nothing); all=true: everyone's")


class FillOut(Schema):
    order: int
    user_id: int
    username: str
    name: str
    give_leg: str
    get_leg: str
    given: str
    received: str
    rest: str = Field(..., description="What the order still offers after this batch")


class BatchOut(Schema):
    session_id: str
    number: int
    cut_at: dt.datetime
    outcome: Literal["cleared", "none"] = Field(..., description="none: nothing traded, every order rests on")
    reason: str = Field(..., description="Why nothing traded (empty when cleared)")
    prices: dict[str, str] = Field(..., description="Clearing price per leg (empty when nothing traded)")
    reference: dict[str, str] = Field(..., description="The oracle's price per leg at the cut")
    ticks: dict[str, int] = Field(..., description="The tick id behind each reference price")
    volume: str = Field(..., description="Traded value at the reference prices")
    orders: int = Field(..., description="Orders in the book at the cut")
    filled: int = Field(..., description="Orders that traded")
    seq: int
    fills: list[FillOut]
