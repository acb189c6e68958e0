"""Laws of the fixing rules through `fix_leg` (what settles and what verify_ledger redoes), by hypothesis:
the order of the ticks changes neither a median nor a VWAP; equal volumes make VWAP the floored mean; a
source outside the deviation never moves a composite; a ladder answers what its first sufficient tier
answers alone; and `redo` of a fixing taken from stored ticks finds no problem, while changing the price or
the volume of any tick the fixing read is found."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import fixing
from oracle.fixing_methods import Insufficient, Obs, lower_median
from oracle.fixing_rules import fix_leg, validate_rule
from oracle.models import Tick

T2 = dt.datetime(2030, 7, 1, 16, 0, tzinfo=dt.UTC)
prices = st.integers(min_value=1, max_value=10**12)
volumes = st.integers(min_value=1, max_value=10**12)
offsets = st.integers(min_value=-59_000_000, max_value=0)  # microseconds before t2: inside a 60 s window


def at(micros: int) -> dt.datetime:
    return T2 + dt.timedelta(microseconds=micros)


@st.composite
def windows(draw, with_volume: bool = True) -> list[Obs]:
    rows = draw(st.lists(st.tuples(offsets, prices, volumes if with_volume else st.none()), min_size=1, max_size=25))
    return [Obs(i + 1, at(t), p, v, "a") for i, (t, p, v) in enumerate(rows)]


def made(obs, rule: dict) -> dict:
    return fix_leg(obs, validate_rule(rule), T2, T2)


@given(windows(), st.randoms(use_true_random=False))
def test_the_order_of_the_ticks_changes_neither_median_nor_vwap(obs, random):
    shuffled = list(obs)
    random.shuffle(shuffled)
    for rule in ({"rule": "median", "window": 60}, {"rule": "vwap", "window": 60}):
        assert made(shuffled, rule) == made(obs, rule)  # the value and the whole record


@given(st.lists(st.tuples(offsets, prices), min_size=1, max_size=25), volumes)
def test_equal_volumes_make_vwap_the_floored_mean(rows, volume):
    obs = [Obs(i + 1, at(t), p, volume, "a") for i, (t, p) in enumerate(rows)]
    record = made(obs, {"rule": "vwap", "window": 60})
    assert record["value"] == sum(p for _, p in rows) // len(rows)
    assert record["volume"] == volume * len(rows)


@given(
    st.integers(min_value=10**6, max_value=10**9),
    st.lists(st.integers(min_value=-50, max_value=50), min_size=2, max_size=7),
    st.one_of(st.integers(min_value=0, max_value=970), st.integers(min_value=1_030, max_value=10**6)),
    st.sampled_from(["last", "median", "twap", "vwap"]),
)
def test_a_source_outside_the_deviation_never_moves_a_composite(center, spreads, far, inner):
    """Honest sources within 0.5% of `center`; one more source at `far` per mille of it, 3% away or more (so
    beyond 2% of any honest value, where the median of all lies): whatever it says, the composite (2%
    deviation) is what the honest ones make, and it is named dropped."""
    honest = [Obs(i + 1, at(-1_000_000), center + center * d // 10_000, 1, f"s{i}") for i, d in enumerate(spreads)]
    outlier = Obs(99, at(-500_000), max(1, center * far // 1_000), 1, "zz")
    rule = {"rule": "composite", "inner": {"rule": inner, "window": 60}, "max_deviation": "0.02"}
    without, with_it = made(honest, rule), made([*honest, outlier], rule)
    assert with_it["value"] == without["value"] == lower_median([o.price for o in honest])
    assert with_it["dropped"] == {"zz": outlier.price}


TIERS = [
    {"rule": "vwap", "window": 60, "min_volume": "1000"},
    {"rule": "vwap", "window": 10, "min_ticks": 3},
    {"rule": "median", "window": 30, "min_ticks": 4},
    {"rule": "twap", "window": 5},
    {"rule": "close", "source": "b"},
    {"rule": "composite", "inner": {"rule": "last"}, "min_sources": 2},
    {"rule": "last"},
]


@given(
    st.lists(st.tuples(offsets, prices, st.none() | volumes, st.sampled_from("ab")), max_size=12),
    st.lists(st.sampled_from(TIERS), min_size=1, max_size=5),
)
def test_a_ladder_answers_what_its_first_sufficient_tier_answers_alone(rows, tiers):
    obs = [Obs(i + 1, at(t), p, v, s) for i, (t, p, v, s) in enumerate(rows)]
    alone = []
    for tier in tiers:
        try:
            alone.append(made(obs, tier))
        except Insufficient as exc:
            alone.append(exc.reason)
    first = next((i for i, a in enumerate(alone) if isinstance(a, dict)), None)
    if first is None:
        with pytest.raises(Insufficient) as caught:
            made(obs, {"rule": "fallback", "tiers": tiers})
        assert caught.value.reason == "; ".join(alone)
        return
    record = made(obs, {"rule": "fallback", "tiers": tiers})
    assert record == alone[first] | {"tier": first, "passed": record["passed"]}
    assert [p["reason"] for p in record["passed"]] == alone[:first]


RULES = [
    {"rule": "last"},
    {"rule": "median", "window": 60},
    {"rule": "twap", "window": 60},
    {"rule": "vwap", "window": 60},
    {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 60, "min_ticks": 3}, {"rule": "median", "window": 60}]},
    {"rule": "composite", "inner": {"rule": "vwap", "window": 60}, "max_deviation": "0.05"},
]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(offsets, st.integers(min_value=900_000, max_value=1_100_000), volumes, st.sampled_from("ab")),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from(RULES),
    st.data(),
)
def test_redo_holds_for_every_fixing_made_and_finds_any_read_tick_changed(rows, rule, data):
    Tick.objects.all().delete()
    Tick.objects.bulk_create(
        Tick(session_id="s", symbol="X", at=at(t), price=p, volume=v, source=s) for t, p, v, s in rows
    )
    try:
        made_ = fixing.take_fixing("s", ["X"], T2, rule)
    except fixing.MissingPrice:
        return
    record = made_.record(lambda d: d.isoformat())
    assert fixing.redo("s", ["X"], record, made_.prices) == []
    read = record["legs"]["X"]["read"]
    changed = data.draw(st.sampled_from(read))
    column = data.draw(st.sampled_from(["price", "volume"]))
    with connection.cursor() as cursor:  # as someone with the database's keys could
        cursor.execute(f"UPDATE oracle_tick SET {column} = {column} + 1 WHERE id = %s", [changed])
    problems = fixing.redo("s", ["X"], record, made_.prices)
    assert problems, f"{column} of tick {changed} changed under a {rule['rule']} fixing and redo found nothing"
