"""The fixing rules: one registry of pure methods with one interface, the checking of a session's rule (its
JSON), the rule in words, and `fix_leg`, which makes one leg's fixing from its observations and says how
(the record `SessionSettled` carries and `verify_ledger` redoes with this same function).

A rule is JSON. The base rules (`RULES`; the methods and their rounding are in `oracle.fixing_methods`):

    {"rule": "last"}                                  the last tick at or before t2
    {"rule": "close", "source": "lse"}                the last tick of one source at or before t2
    {"rule": "median" | "twap" | "vwap", "window": 300, "after": 0}

A windowed rule looks at (t2 - window, t2 + after]; `after` > 0 is a centred window (WM/Reuters), and the
settlement then waits until it ends. Every base rule may name a `source` (only its ticks count), and the
windowed ones a sufficiency test: `min_ticks` (ticks in the window) and `min_volume` (units traded in it;
`vwap` counts only the ticks that carry a volume). Two rules combine the others:

    {"rule": "composite", "inner": {...base rule...}, "sources": ["a", "b", "c"], "min_sources": 2,
     "max_deviation": "0.02"}
    {"rule": "fallback", "tiers": [{...base or composite...}, ...]}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from oracle import fixing_methods as m
from oracle import units
from oracle.fixing_methods import Answer, Insufficient, Obs, Window

MAX_WINDOW = 86_400
MAX_TIERS = 8
MAX_SOURCES = 16


class InvalidRule(ValueError):
    pass


@dataclass(frozen=True)
class RuleDef:
    """A base rule: its method (observations of one leg, the checked spec, its window) -> Answer."""

    method: Callable[[Sequence[Obs], dict, Window], Answer]
    windowed: bool
    reference: str


def _last(obs: Sequence[Obs], spec: dict, w: Window) -> Answer:
    return m.last(obs, w.end)


def _close(obs: Sequence[Obs], spec: dict, w: Window) -> Answer:
    return m.close(obs, w.end, source=spec.get("source"))


def _median(obs: Sequence[Obs], spec: dict, w: Window) -> Answer:
    return m.median(_sufficient("median", w.inside(obs), spec))


def _twap(obs: Sequence[Obs], spec: dict, w: Window) -> Answer:
    _sufficient("twap", w.inside(obs), spec)
    return m.twap(obs, w)


def _vwap(obs: Sequence[Obs], spec: dict, w: Window) -> Answer:
    return m.vwap(w.inside(obs), min_volume=_volume(spec), min_ticks=spec.get("min_ticks", 1))


RULES: dict[str, RuleDef] = {
    "last": RuleDef(_last, False, "the last traded or quoted price (CME tier 2, LSE's last automated trade)"),
    "close": RuleDef(_close, False, "a named venue's close: its last price at or before t2 (LSE close)"),
    "median": RuleDef(_median, True, "median of the window's quotes, WM/Reuters style; the lower middle"),
    "twap": RuleDef(_twap, True, "time-weighted average over the window (BFIX without its triangle), floored"),
    "vwap": RuleDef(_vwap, True, "volume-weighted average of the window's trades (CME tier 1, LSE), floored"),
}
COMBINED = ("composite", "fallback")
NAMES = (*RULES, *COMBINED)


def _volume(spec: dict) -> int:
    return units.parse_fixed(spec.get("min_volume", "0"), dp=units.QTY_DP, what="", max_value=10**15, allow_zero=True)


def _sufficient(name: str, inside: list[Obs], spec: dict) -> list[Obs]:
    """The window's observations, refused when fewer than `min_ticks` or under `min_volume`."""
    need = spec.get("min_ticks", 1)
    if len(inside) < need:
        raise Insufficient(f"{name}: {len(inside)} ticks in the window, {need} needed")
    floor = _volume(spec)
    if floor:
        volume = sum(o.volume or 0 for o in inside)
        if volume < floor:
            raise Insufficient(f"{name}: volume {m.show_volume(volume)} in the window, {m.show_volume(floor)} needed")
    return inside


# ---------------------------------------------------------------- making a fixing


def window(spec: dict, t2: dt.datetime, end: dt.datetime) -> Window:
    """Where a base rule looks when the fixing is scheduled at `t2` and taken at `end` (a window cut short
    by a settlement by hand ends then; a centred window ends at t2 + after at the latest)."""
    if not RULES[spec["rule"]].windowed:
        return Window(None, min(t2, end))
    return Window(t2 - dt.timedelta(seconds=spec["window"]), min(t2 + dt.timedelta(seconds=spec.get("after", 0)), end))


def _base(obs: Sequence[Obs], spec: dict, t2: dt.datetime, end: dt.datetime) -> Answer:
    if "source" in spec:
        obs = [o for o in obs if o.source == spec["source"]]
    return RULES[spec["rule"]].method(obs, spec, window(spec, t2, end))


def _one(obs: Sequence[Obs], spec: dict, t2: dt.datetime, end: dt.datetime) -> Answer:
    """A base rule or a composite over one leg's observations."""
    if spec["rule"] != "composite":
        return _base(obs, spec, t2, end)
    deviation = spec.get("max_deviation")
    return m.median_of_sources(
        obs,
        lambda mine: _base(mine, spec["inner"], t2, end),
        sources=spec.get("sources"),
        min_sources=spec.get("min_sources", 1),
        max_deviation=Fraction(deviation) if deviation is not None else None,
    )


def fix_leg(obs: Sequence[Obs], spec: dict, t2: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """One leg's fixing under a checked rule, as the record shows it: the value, the tier that answered
    (0 for a rule without tiers) and why each tier above it did not, the ticks it came from with their
    sources and volume, and a composite's sources (answered, dropped as outliers, refused). Raises
    Insufficient with every tier's reason when none answers."""
    tiers = spec["tiers"] if spec["rule"] == "fallback" else [spec]
    passed: list[dict[str, Any]] = []
    for i, tier in enumerate(tiers):
        try:
            answer = _one(obs, tier, t2, end)
        except Insufficient as exc:
            passed.append({"tier": i, "rule": tier["rule"], "reason": exc.reason})
            continue
        ids = sorted(answer.used)  # mostly in order already: the sort is a pass
        used = set(ids)
        chosen = obs if len(used) == len(obs) else [o for o in obs if o.id in used]
        volumes = [o.volume for o in chosen if o.volume is not None]
        record: dict[str, Any] = {
            "value": answer.price,
            "tier": i,
            "rule": tier["rule"],
            "passed": passed,
            "used": ids,
            "sources": sorted({o.source for o in chosen}),
            "volume": sum(volumes) if volumes else None,
        }
        for key in ("sources", "dropped", "refused"):
            if key in answer.detail and isinstance(answer.detail[key], dict):
                record["by_source" if key == "sources" else key] = dict(sorted(answer.detail[key].items()))
        return record
    raise Insufficient("; ".join(p["reason"] for p in passed))


def reach(spec: dict) -> tuple[int, int]:
    """The furthest any part of the rule looks before t2 and after it, in seconds."""
    if spec["rule"] == "fallback":
        spans = [reach(t) for t in spec["tiers"]]
        return max(b for b, _ in spans), max(a for _, a in spans)
    if spec["rule"] == "composite":
        return reach(spec["inner"])
    if not RULES[spec["rule"]].windowed:
        return 0, 0
    return spec["window"], spec.get("after", 0)


# ---------------------------------------------------------------- checking a rule


def validate_rule(spec: object) -> dict:
    """A session's fixing rule, checked and in its one written form; InvalidRule says what is wrong."""
    if spec is None:
        return {"rule": "last"}
    if not isinstance(spec, dict):
        raise InvalidRule('The fixing rule must be an object such as {"rule": "last"}')
    name = spec.get("rule", "last")
    if name == "fallback":
        _only(spec, "fallback", {"tiers"})
        tiers = spec.get("tiers")
        if not isinstance(tiers, list) or not 1 <= len(tiers) <= MAX_TIERS:
            raise InvalidRule(f"A fallback rule needs a list of 1 to {MAX_TIERS} tiers, tried in order")
        return {"rule": "fallback", "tiers": [_one_rule(t, f"Tier {i + 1}: ") for i, t in enumerate(tiers)]}
    return _one_rule(spec, "")


def _one_rule(spec: object, where: str) -> dict:
    if not isinstance(spec, dict):
        raise InvalidRule(f'{where}a rule must be an object such as {{"rule": "last"}}')
    name = spec.get("rule", "last")
    if name == "composite":
        return _composite(spec, where)
    return _base_rule(spec, where)


def _base_rule(spec: dict, where: str) -> dict:
    name = spec.get("rule", "last")
    if not isinstance(name, str) or name not in RULES:
        allowed = ", ".join(NAMES) if not where else ", ".join(RULES)
        raise InvalidRule(f"{where}Unknown fixing rule {str(name)[:40]!r}: use one of {allowed}")
    windowed = RULES[name].windowed
    keys = {"source"} | ({"window", "after", "min_ticks", "min_volume"} if windowed else set())
    if name == "last":
        spec = {k: v for k, v in spec.items() if k != "window"}  # a window means nothing to `last`
    _only(spec, name, keys, where)
    out: dict[str, Any] = {"rule": name}
    if windowed:
        try:
            out["window"] = units.read_whole(
                spec.get("window", 60), f"{where}The fixing window", low=1, high=MAX_WINDOW, unit="seconds"
            )
            if spec.get("after"):
                out["after"] = units.read_whole(
                    spec["after"], f"{where}The window after t2", low=0, high=MAX_WINDOW, unit="seconds"
                )
            if "min_ticks" in spec:
                out["min_ticks"] = units.read_whole(spec["min_ticks"], f"{where}min_ticks", low=1, high=10**6)
            if "min_volume" in spec:
                volume = units.parse_fixed(
                    spec["min_volume"], dp=units.QTY_DP, what=f"{where}min_volume", max_value=10**9, allow_zero=True
                )
                out["min_volume"] = m.show_volume(volume)
        except units.InvalidNumber as exc:
            raise InvalidRule(exc.message) from None
    if "source" in spec:
        out["source"] = _source(spec["source"], where)
    return out


def _composite(spec: dict, where: str) -> dict:
    _only(spec, "composite", {"inner", "sources", "min_sources", "max_deviation"}, where)
    inner = spec.get("inner")
    if not isinstance(inner, dict) or inner.get("rule", "last") in COMBINED:
        raise InvalidRule(f"{where}A composite needs an inner rule: one of {', '.join(RULES)}")
    out: dict[str, Any] = {"rule": "composite", "inner": _base_rule(inner, f"{where}Inner rule: ")}
    sources = spec.get("sources")
    if sources is not None:
        if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_SOURCES:
            raise InvalidRule(f"{where}A composite's sources are a list of 1 to {MAX_SOURCES} source names")
        names = [_source(s, where) for s in sources]
        if len(set(names)) != len(names):
            raise InvalidRule(f"{where}A composite names each source once")
        out["sources"] = names
    try:
        low, high = 1, len(out.get("sources", [])) or MAX_SOURCES
        out["min_sources"] = units.read_whole(spec.get("min_sources", 1), f"{where}min_sources", low=low, high=high)
        if spec.get("max_deviation") is not None:
            deviation = units.read_decimal(spec["max_deviation"], f"{where}max_deviation")
            if not 0 < deviation <= 1 or units.decimal_places(deviation) > 6:
                raise InvalidRule(f"{where}max_deviation must be a fraction above 0, at most 1, 6 decimals at most")
            out["max_deviation"] = str(deviation.normalize()) if deviation != 1 else "1"
    except units.InvalidNumber as exc:
        raise InvalidRule(exc.message) from None
    return out


def _source(value: object, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 64 or not value.isprintable():
        raise InvalidRule(f"{where}A source is a name of 1 to 64 printable characters")
    return value.strip()


def _only(spec: dict, name: str, allowed: set[str], where: str = "") -> None:
    extra = sorted(set(spec) - allowed - {"rule"})
    if extra:
        takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes nothing else"
        raise InvalidRule(f"{where}The {name} rule has no {extra[0]!r}: {takes}")


# ---------------------------------------------------------------- the rule in words


def describe(spec: dict) -> str:
    """The rule as a sentence for the floor and the payouts page."""
    if spec["rule"] == "fallback":
        return "; if that cannot be made, ".join(describe(t) for t in spec["tiers"])
    if spec["rule"] == "composite":
        inner = describe(spec["inner"])
        sources = ", ".join(spec["sources"]) if "sources" in spec else "every source"
        said = f"the median across {sources} of each one's {inner.removeprefix('the ')}"
        need = spec.get("min_sources", 1)
        if need > 1:
            said += f", at least {need} sources"
        if "max_deviation" in spec:
            said += (
                f", dropping those more than {(Decimal(spec['max_deviation']) * 100).normalize():f}% from the median"
            )
        return said
    name = spec["rule"]
    source = f" from {spec['source']}" if "source" in spec else ""
    if name in ("last", "close"):
        return f"the {'close' if name == 'close' else 'last price'}{source} at or before t2"
    words = {"median": "the median price", "twap": "the time-weighted average price", "vwap": "the VWAP"}[name]
    span = f"the {spec['window']} s before t2"
    if spec.get("after"):
        span = f"{spec['window']} s before to {spec['after']} s after t2"
    tests = []
    if "min_ticks" in spec:
        tests.append(f"at least {spec['min_ticks']} ticks")
    if "min_volume" in spec:
        tests.append(f"at least {spec['min_volume']} traded")
    return f"{words}{source} over {span}" + (f" ({', '.join(tests)})" if tests else "")
