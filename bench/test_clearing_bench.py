"""The clearing benchmark runs (small sizes) and reports what it says it does."""

from __future__ import annotations

from bench import clearing


def test_the_clearing_benchmark_measures_a_small_book(tmp_path):
    row = clearing.measure(4, 100, 1, tmp_path)
    assert row["result"] == "cleared" and row["fills"] > 0
    assert 0 < row["search_s"] and row["evaluations"] > 0 and row["total_s"] >= row["clear_s"]
    assert "| 4 | 100 |" in clearing.table([row])


def test_the_miss_rate_measurement_counts_books_and_never_finds_the_search_below_a_pair():
    for kind in ("bench", "wide"):
        s = clearing.samples(6, kind, draws=5, seed=7)
        assert s["books"] == 6 and s["kind"] == kind and 0 <= s["cleared"] <= 6
        assert s["below_floor"] == 0 and s["failed"] == 0 and 0 <= s["beaten"] <= 6
