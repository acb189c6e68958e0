"""The floor's price chart: every leg indexed to 100 at the first price of the window (so legs priced
190 and 480 share one axis), a time axis, and the session's trades marked where they happened.

Server-rendered SVG geometry. The coordinates are drawing positions (floats); the prices they come
from and the index figures shown stay exact.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal

from markets import domain
from markets.models import Session, Trade
from markets.selectors.prices import PriceHistory, price_history, splits_of

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 30  # margins for the axes' labels
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
POINT_PX = 2  # the chart draws at most one point per this many units of its width
MARK_PX = 4  # trades this close on the time axis share one mark (its tooltip lists them)
MARKS_READ = 200  # the newest trades of the window the chart marks
MARK_LINES = 6  # trades a shared mark's tooltip names; it counts the rest
COLOURS = ("#2357d6", "#d9480f", "#0f8a4a", "#9c36b5", "#1098ad", "#e8590c", "#5c940d", "#c2255c")


@dataclass
class Series:
    leg: str
    colour: str
    points: str  # SVG polyline points
    last_index: Decimal | None  # the last price as an index (100 = the window's first price)


@dataclass
class Chart:
    series: list[Series] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    trades: list[tuple[float, str]] = field(default_factory=list)  # x, what the mark says (one per MARK_PX)
    cuts: list[tuple[float, str]] = field(default_factory=list)  # x, the split at that cut ("NVDA 10:1")
    marks_read: int = MARKS_READ
    marks_capped: bool = False  # the window has more trades than the chart marks
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_bottom: int = HEIGHT - BOTTOM
    plot_top: int = TOP


def _thin(points: list[tuple[float, float]]) -> str:
    """SVG points with at most one per POINT_PX of width (the last price in each; the first point is
    kept): a line of 600 ticks drawn 600 px wide looks the same, and every tick push carries half."""
    kept: dict[int, tuple[float, float]] = {}
    for px, py in points:
        kept[int(px // POINT_PX)] = (px, py)
    if points and points[0] not in kept.values():
        kept[-1] = points[0]
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in sorted(kept.values()))


def _nice_step(span: float, target: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `target` gridlines over `span`."""
    raw = span / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if raw <= m * power)


def price_chart(session: Session, until: dt.datetime | None = None, history: PriceHistory | None = None) -> Chart:
    """The chart of the last `prices.WINDOW` ticks of each leg since the opening (up to `until`: a settled
    session's ends at its fixing), with the trades in that time. `history` is the floor's one read of
    the prices, when it has it."""
    history = history or price_history(session, until=until)
    window = history.since(session.opened_at or session.created_at)
    stamps = [at for ticks in window.values() for at, _ in ticks]
    chart = Chart()
    if len(set(stamps)) < 2:
        return chart  # one instant draws no line
    start, end = min(stamps), max(stamps)
    chart.start, chart.end = start, end
    t0 = start.timestamp()
    seconds = max(end.timestamp() - t0, 1.0)
    # Drawing positions only (floats); the index shown in the legend is exact, below.
    index = {
        leg: [(at.timestamp(), price * 100.0 / ticks[0][1]) for at, price in ticks]
        for leg, ticks in window.items()
        if ticks and ticks[0][1] > 0
    }
    values = [v for series in index.values() for _, v in series] or [100.0]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 0.05)
    lo, hi = lo - pad, hi + pad
    x0, x1, y0, y1 = chart.plot_left, chart.plot_right, chart.plot_bottom, chart.plot_top
    x_scale, y_scale = (x1 - x0) / seconds, (y0 - y1) / (hi - lo)

    def x_at(t: float) -> float:
        return x0 + (t - t0) * x_scale

    def x(at: dt.datetime) -> float:
        return x_at(at.timestamp())

    def y(v: float) -> float:
        return y0 - (v - lo) * y_scale

    for k, leg in enumerate(session.legs):
        series = index.get(leg, [])
        ticks = window.get(leg, [])
        chart.series.append(
            Series(
                leg=leg,
                colour=COLOURS[k % len(COLOURS)],
                points=_thin([(x_at(t), y(v)) for t, v in series]),
                last_index=(Decimal(ticks[-1][1]) * 100 / Decimal(ticks[0][1])).quantize(Decimal("0.01"))
                if series
                else None,
            )
        )
    step = _nice_step(hi - lo, 4)
    v = (lo // step + 1) * step
    while v < hi:
        chart.y_ticks.append((round(y(v), 1), f"{v:g}"))
        v += step
    t_step = next((s for s in TIME_STEPS if s >= seconds / 5), TIME_STEPS[-1])
    epoch = math.ceil(start.timestamp() / t_step) * t_step
    while epoch <= end.timestamp():
        t = dt.datetime.fromtimestamp(epoch, dt.UTC)
        chart.x_ticks.append((round(x(t), 1), t.strftime("%H:%M:%S" if t_step < 60 else "%H:%M")))
        epoch += t_step
    for leg, cuts in splits_of(session).items():  # each split's cut, where the leg's level changed
        for cut, ratio in cuts:
            if start <= cut <= end:
                chart.cuts.append((round(x(cut), 1), f"{leg} {ratio.numerator}:{ratio.denominator}"))
    trades = Trade.objects.filter(session=session, executed_at__gte=start, executed_at__lte=end)
    newest = list(trades.select_related("taker", "maker").order_by("-id")[:MARKS_READ])
    chart.marks_capped = len(newest) == MARKS_READ
    chart.trades = _marks([(x(trade.executed_at), trade) for trade in reversed(newest)])
    return chart


def _said(trade: Trade) -> str:
    """One trade as its mark's tooltip names it."""
    return (
        f"trade {trade.id} {trade.executed_at:%H:%M:%S}: {trade.taker.display_name} "
        f"{domain.qty_str(trade.give_qty)} {trade.give_leg} → {domain.qty_str(trade.get_qty)} {trade.get_leg} "
        f"with {trade.maker.display_name}"
    )


def _marks(placed: list[tuple[float, Trade]]) -> list[tuple[float, str]]:
    """One mark per MARK_PX of the time axis, at its newest trade: a busy minute is a few marks, not a
    fence of hundreds (and the floor's page stays small). A shared mark's tooltip names its newest
    MARK_LINES trades and counts the rest."""
    groups: dict[int, list[tuple[float, Trade]]] = {}
    for at_x, trade in placed:
        groups.setdefault(int(at_x // MARK_PX), []).append((at_x, trade))
    marks = []
    for group in groups.values():
        at_x, newest = group[-1]
        if len(group) == 1:
            marks.append((round(at_x, 1), _said(newest)))
            continue
        first = group[0][1].executed_at
        lines = [f"{len(group)} trades {first:%H:%M:%S} to {newest.executed_at:%H:%M:%S}"]
        lines += [_said(trade) for _, trade in reversed(group[-MARK_LINES:])]
        if len(group) > MARK_LINES:
            lines.append(f"… and {len(group) - MARK_LINES} more")
        marks.append((round(at_x, 1), "\n".join(lines)))
    return marks
